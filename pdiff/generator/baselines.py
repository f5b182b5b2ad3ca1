"""Cheap generators that p-diff must beat (memorization study, arXiv 2506.07998).

If a diffusion model only reproduces its training checkpoints, then perturbing or averaging the
zoo directly gives models that look just as good. Each baseline takes the zoo (K, D), an explicit
`torch.Generator` (so the same seed gives the same baseline) and returns `BaselineModels`: the
(n, D) parameter vectors plus, where a model comes from specific zoo checkpoints, their indices,
so the analysis can ask whether a noisy copy is still closest to its own source.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..zoo.params import ParamLayout


@dataclass(frozen=True)
class BaselineModels:
    params: Tensor  # (n, D)
    sources: Tensor | None  # (n,) or (n, m) zoo indices each model was built from; None if none


def _pick(zoo: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """(n,) zoo indices drawn uniformly with replacement."""
    if zoo.shape[0] == 0:
        raise ValueError("the zoo is empty")
    return torch.randint(zoo.shape[0], (n,), generator=generator, device=zoo.device)


def _noise(shape: tuple[int, ...], like: Tensor, generator: torch.Generator) -> Tensor:
    return torch.randn(shape, generator=generator, dtype=like.dtype, device=like.device)


def noise_addition(zoo: Tensor, sigma: float, n: int, generator: torch.Generator) -> BaselineModels:
    """n random zoo checkpoints (with replacement) plus N(0, sigma^2) noise, sigma absolute."""
    sources = _pick(zoo, n, generator)
    params = zoo[sources] + sigma * _noise((n, zoo.shape[1]), zoo, generator)
    return BaselineModels(params, sources)


def relative_noise(zoo: Tensor, layout: ParamLayout, sigma: float, n: int,
                   generator: torch.Generator) -> BaselineModels:
    """Like `noise_addition`, but each tensor's noise std is sigma * that tensor's std in the
    chosen checkpoint (population std over its entries), as p-diff's own evaluation perturbs
    models: a BatchNorm bias and a linear weight get noise on their own scale.
    """
    _check_layout(zoo, layout)
    sources = _pick(zoo, n, generator)
    chosen = zoo[sources]  # (n, D)
    scale = torch.empty_like(chosen)
    for seg in layout.segments:  # a loop over tensors, vectorized over models
        block = chosen[:, seg.start:seg.stop]
        scale[:, seg.start:seg.stop] = block.std(dim=1, correction=0, keepdim=True)
    params = chosen + sigma * scale * _noise(tuple(chosen.shape), zoo, generator)
    return BaselineModels(params, sources)


def _check_layout(zoo: Tensor, layout: ParamLayout) -> None:
    if zoo.shape[1] != layout.dim:
        raise ValueError(f"zoo has {zoo.shape[1]} parameters but the layout describes {layout.dim}")


def copies(zoo: Tensor, noise: float, n: int, generator: torch.Generator) -> BaselineModels:
    """Copies by construction: n random zoo checkpoints, each coordinate moved by Gaussian noise of
    `noise` times that coordinate's spread across the zoo (its population std). At 1 % a copy
    behaves like its checkpoint; it is the "copies" end of the ruler (judge/ruler.py)."""
    sources = _pick(zoo, n, generator)
    spread = zoo.std(dim=0, correction=0)
    return BaselineModels(zoo[sources] + noise * spread * _noise((n, zoo.shape[1]), zoo, generator), sources)


def averaged(zoo: Tensor, m: int, n: int, generator: torch.Generator) -> BaselineModels:
    """Each model is the mean of m distinct random zoo checkpoints (m clipped to K).

    Sources are (n, m). Distinct indices come from argsorting uniform noise per row; the mean is
    a (n, K) weight matrix times the zoo, so memory stays (n, D) however large m is.
    """
    k = zoo.shape[0]
    if k == 0:
        raise ValueError("the zoo is empty")
    if m < 1:
        raise ValueError(f"averaged needs m >= 1 checkpoints per model, got {m}")
    m = min(m, k)
    sources = torch.rand((n, k), generator=generator, device=zoo.device).argsort(dim=1)[:, :m]  # (n, m)
    weights = torch.zeros(n, k, dtype=zoo.dtype, device=zoo.device)
    weights.scatter_(1, sources, 1.0 / m)
    return BaselineModels(weights @ zoo, sources)


def gaussian(zoo: Tensor, n: int, generator: torch.Generator) -> BaselineModels:
    """Independent per-parameter Gaussian fitted to the zoo (per-coordinate mean and sample std).

    It keeps each parameter's marginal but none of the correlations between parameters; if it
    scores like p-diff, the generator has learned little beyond marginals.
    """
    if zoo.shape[0] == 0:
        raise ValueError("the zoo is empty")
    mean = zoo.mean(dim=0)
    std = zoo.std(dim=0, correction=1) if zoo.shape[0] > 1 else torch.zeros_like(mean)
    params = mean + std * _noise((n, zoo.shape[1]), zoo, generator)
    return BaselineModels(params, None)
