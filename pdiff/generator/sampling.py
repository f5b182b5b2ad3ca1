"""Sampling: draw latents with the diffusion model and decode them into parameter vectors.

`LatentCodec` maps between parameter space and the standardized latents (normalizer ->
autoencoder -> latent standardization, and back); `ParamGenerator` adds the denoiser and the
diffusion process that sample those latents.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .autoencoder import NoisyAutoencoder
from .denoisers import GuidedDenoiser
from .normalizer import Normalizer
from .samplers import make_sampler, sample_loop
from .whitening import LatentWhitening


@dataclass
class LatentStats:
    """Latents are centred per dimension and scaled by one global std before diffusion,
    so the DDPM sees roughly unit-variance data whatever scale the autoencoder chose."""

    mean: torch.Tensor  # (L,)
    scale: torch.Tensor  # ()
    low: torch.Tensor | None = None  # (L,) range of the standardized training latents, widened
    high: torch.Tensor | None = None  # by 10% per side: the bounds sampling clips x0 to

    @classmethod
    def fit(cls, latents: torch.Tensor, margin: float = 0.1) -> LatentStats:
        mean = latents.mean(0)
        scale = (latents - mean).std().clamp(min=1e-8)
        z = (latents - mean) / scale
        low, high = z.min(0).values, z.max(0).values
        pad = margin * (high - low)
        return cls(mean, scale, low - pad, high + pad)

    def bounds(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.low is None or self.high is None:
            return None
        return self.low.to(device), self.high.to(device)

    def standardize(self, z: torch.Tensor) -> torch.Tensor:
        """(N, L) autoencoder latents -> standardized latents."""
        return (z - self.mean.to(z.device)) / self.scale.to(z.device)

    def unstandardize(self, u: torch.Tensor) -> torch.Tensor:
        return u * self.scale.to(u.device) + self.mean.to(u.device)


@dataclass
class Samples:
    params: torch.Tensor  # (N, D) de-normalized parameter vectors
    latents: torch.Tensor  # (N, L) standardized latents the diffusion produced
    trajectory: torch.Tensor  # (P, M, D) decoded x0-predictions of the first M samples
    trajectory_steps: torch.Tensor  # (P,) diffusion timestep of each trajectory point


@dataclass
class LatentCodec:
    """Parameters <-> standardized latents: the normalizer, the autoencoder and the standardization
    of its latents, as the autoencoder stage fitted them."""

    normalizer: Normalizer
    autoencoder: NoisyAutoencoder
    stats: LatentStats

    @property
    def device(self) -> torch.device:
        return next(self.autoencoder.parameters()).device

    @torch.no_grad()
    def encode(self, params: torch.Tensor) -> torch.Tensor:
        """(N, D) raw parameters -> (N, L) standardized latents (no noise)."""
        return self.stats.standardize(self.autoencoder.encode(self.normalizer.normalize(params.to(self.device))))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(N, L) standardized latents -> (N, D) raw parameters."""
        return self.normalizer.denormalize(self.autoencoder.decode(self.stats.unstandardize(latents.to(self.device))))


@dataclass
class ParamGenerator:
    """A codec and the diffusion that samples its latents. The diffusion may work in its own
    coordinates of the latents (`coords`, a `LatentWhitening` fitted by the diffusion stage);
    `sample` maps back before decoding."""

    codec: LatentCodec
    denoiser: nn.Module
    diffusion: nn.Module  # GaussianDiffusion or flow.RectifiedFlow
    coords: LatentWhitening | None = None  # None: the diffusion works on the standardized latents

    @property
    def device(self) -> torch.device:
        return self.codec.device

    @property
    def stats(self) -> LatentStats:
        return self.codec.stats

    @property
    def normalizer(self) -> Normalizer:
        return self.codec.normalizer

    def encode(self, params: torch.Tensor) -> torch.Tensor:
        return self.codec.encode(params)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.codec.decode(latents)

    def to_coords(self, latents: torch.Tensor) -> torch.Tensor:
        """Standardized latents (N, L) -> the diffusion's coordinates (N, k)."""
        return latents if self.coords is None else self.coords.standardize(latents)

    def from_coords(self, u: torch.Tensor) -> torch.Tensor:
        return u if self.coords is None else self.coords.unstandardize(u)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator, sampler: str = "ddpm", steps: int = 0,
               eta: float = 0.0, trajectory_models: int = 0, trajectory_points: int = 0,
               clip: bool = False, accuracy: float | None = None, guidance: float = 0.0) -> Samples:
        """Draw n latents, keep the first M samples' x0-predictions at P steps, decode everything.

        `steps` = 0 takes the sampler's default; `clip` bounds x0-predictions to the training
        latents' range in the diffusion's coordinates (see `LatentStats`, `LatentWhitening`).
        `accuracy` (percent) and `guidance` steer a denoiser conditioned on accuracy
        (classifier-free guidance, see `denoisers.GuidedDenoiser`); guidance 0 is unconditional."""
        space = self.coords if self.coords is not None else self.stats
        walker = make_sampler(sampler, self.diffusion, steps, eta, space.bounds(self.device) if clip else None)
        record = _spread(walker.timesteps, trajectory_points) if trajectory_models else set()
        kept: dict[int, torch.Tensor] = {}

        def callback(step: int, x0: torch.Tensor) -> None:
            if step in record:
                kept[step] = self.from_coords(x0[:trajectory_models]).clone()

        self.denoiser.eval()
        network = self.denoiser
        if accuracy is not None and guidance > 0:
            if not getattr(self.denoiser, "conditional", False):
                raise ValueError("this run's denoiser is not conditioned on accuracy (diffusion.condition=none)")
            network = GuidedDenoiser(self.denoiser, accuracy, guidance)
        u = sample_loop(network, walker, (n, self.denoiser.length), generator, self.device, callback)
        latents = self.from_coords(u)
        visited = sorted(kept, reverse=True)
        trajectory = (torch.stack([self.decode(kept[s]) for s in visited]) if visited
                      else torch.zeros(0, 0, self.normalizer.mean.numel()))
        return Samples(self.decode(latents).float().cpu(), latents.cpu(), trajectory.float().cpu(),
                       torch.tensor(visited, dtype=torch.long))


def _spread(visited: list[int], points: int) -> set[int]:
    """`points` of the sampler's timesteps, evenly spread over them (the last, t=0, always kept)."""
    if points <= 0:
        return set()
    picks = torch.linspace(0, len(visited) - 1, min(points, len(visited))).round().long()
    return {visited[i] for i in picks.tolist()}
