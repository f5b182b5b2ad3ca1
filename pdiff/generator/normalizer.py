"""The parameter normalizer: how the generator sees a zoo's vectors before the autoencoder.

Fitted once on the training checkpoints and stored with the autoencoder, so decoding undoes
exactly what encoding did.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..zoo.params import ParamLayout


@dataclass(frozen=True)
class Normalizer:
    """Fitted on the zoo: per-tensor z-score (p-diff v2: one mean and std per target tensor), or
    centred on the zoo mean with one spread (`centre`)."""

    mean: torch.Tensor  # (D,) each segment's scalar mean, broadcast over its entries
    std: torch.Tensor  # (D,)

    @classmethod
    def fit(cls, zoo: torch.Tensor, layout: ParamLayout, centre: bool = False) -> Normalizer:
        """`zoo` is (K, D); statistics are taken over all checkpoints and all entries of a tensor.

        With `centre`, the mean is the zoo's mean vector and the scale one spread (the RMS of all
        deviations from it): the autoencoder then spends its capacity on how zoo models differ,
        not on the values they share, and distances keep their parameter-space proportions.
        """
        if centre:
            return cls._centred(zoo.double())
        zoo64 = zoo.double()
        mean = torch.empty(layout.dim, dtype=torch.float64)
        std = torch.empty(layout.dim, dtype=torch.float64)
        for s in layout.segments:
            block = zoo64[:, s.start:s.stop]
            mean[s.start:s.stop] = block.mean()
            sd = block.std(unbiased=False) if block.numel() > 1 else torch.tensor(0.0, dtype=torch.float64)
            std[s.start:s.stop] = sd if sd > 1e-8 else 1.0  # a constant tensor is only centred
        return cls(mean, std)

    @classmethod
    def _centred(cls, zoo64: torch.Tensor) -> Normalizer:
        mean = zoo64.mean(0)
        spread = (zoo64 - mean).pow(2).mean().sqrt()
        scale = spread if spread > 1e-12 else torch.tensor(1.0, dtype=torch.float64)
        return cls(mean, torch.full_like(mean, scale.item()))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.double() - self.mean.to(x.device)) / self.std.to(x.device)).to(x.dtype)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return (z.double() * self.std.to(z.device) + self.mean.to(z.device)).to(z.dtype)

    def state(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> Normalizer:
        return cls(state["mean"].double(), state["std"].double())
