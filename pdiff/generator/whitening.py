"""Latent whitening: the coordinates the diffusion model works in, fitted on the training latents.

A zoo from one training trajectory is a thin curve: most of the latents' variance lies along one
direction and nearly all of it within a handful of latent dimensions; the rest is dust.
`LatentStats` (sample.py) centres each dimension and divides by one global std, so the denoiser
sees a long curve whose cross-section is a few hundredths of its length and has to resolve both
scales under the same noise. `LatentWhitening` rotates the centred latents onto their principal
axes, keeps the axes that hold `variance` of the total, and scales each to unit variance. The
denoiser then works in k (not L) dimensions, each one visible under the noise; decoding maps
back with the same basis, so dropped axes come back at their training mean.

Notebook 07 measures it: whitened latents give the generated models the training latents'
spread and a higher precision than one global scale or a std per dimension. Whitening every axis
instead is worse: the dust axes are blown up to unit variance and the denoiser spends itself on
them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LatentWhitening:
    """u = ((z - mean) @ basis) / std and back; basis (L, k) orthonormal columns, std (k,)."""

    mean: torch.Tensor  # (L,)
    basis: torch.Tensor  # (L, k) principal axes, largest variance first
    std: torch.Tensor  # (k,) std of the training latents along each axis
    low: torch.Tensor | None = None  # (k,) range of the whitened training latents, widened
    high: torch.Tensor | None = None  # by `margin` per side: the bounds sampling may clip x0 to

    @classmethod
    def fit(cls, latents: torch.Tensor, variance: float = 0.9999, margin: float = 0.1) -> LatentWhitening:
        """Principal axes of (N, L) latents, as many as hold `variance` of the total (at least 1)."""
        latents = latents.double()
        mean = latents.mean(0)
        _, sv, vt = torch.linalg.svd(latents - mean, full_matrices=False)
        explained = sv.square().cumsum(0) / sv.square().sum().clamp_min(1e-300)
        k = min(int((explained < variance).sum()) + 1, len(sv))
        std = (sv[:k] / max(len(latents) - 1, 1) ** 0.5).clamp_min(1e-12)
        whitening = cls(mean.float(), vt[:k].T.float(), std.float())
        u = whitening.standardize(latents.float())
        low, high = u.min(0).values, u.max(0).values
        pad = margin * (high - low)
        whitening.low, whitening.high = low - pad, high + pad
        return whitening

    @property
    def dim(self) -> int:
        """k, the length of the whitened vectors the denoiser works on."""
        return self.basis.shape[1]

    def standardize(self, z: torch.Tensor) -> torch.Tensor:
        """(N, L) autoencoder latents -> (N, k) whitened coordinates."""
        return ((z - self.mean.to(z)) @ self.basis.to(z)) / self.std.to(z)

    def unstandardize(self, u: torch.Tensor) -> torch.Tensor:
        """(N, k) whitened coordinates -> (N, L) autoencoder latents."""
        return (u * self.std.to(u)) @ self.basis.to(u).T + self.mean.to(u)

    def bounds(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.low is None or self.high is None:
            return None
        return self.low.to(device), self.high.to(device)

    def state(self) -> dict[str, torch.Tensor]:
        out = {"mean": self.mean, "basis": self.basis, "std": self.std}
        if self.low is not None and self.high is not None:
            out |= {"low": self.low, "high": self.high}
        return out

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> LatentWhitening:
        return cls(state["mean"], state["basis"], state["std"], state.get("low"), state.get("high"))
