"""Baselines have the statistics they claim and record where their models came from."""
from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from pdiff.generator import baselines
from pdiff.zoo.params import ParamLayout


def _zoo(k: int = 20, seed: int = 0) -> tuple[torch.Tensor, ParamLayout]:
    layout = ParamLayout.from_named_shapes([("bn.weight", (8,)), ("bn.bias", (8,)), ("head.weight", (3, 8))])
    g = torch.Generator().manual_seed(seed)
    zoo = torch.randn(k, layout.dim, generator=g)
    zoo[:, :8] = 1.0 + 0.01 * zoo[:, :8]  # tensors on very different scales
    zoo[:, 16:] *= 10.0
    return zoo, layout


def _gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_noise_sigma_zero_is_exact_zoo_rows():
    zoo, _ = _zoo()
    out = baselines.noise_addition(zoo, 0.0, 15, _gen())
    assert out.params.shape == (15, zoo.shape[1]) and out.sources.shape == (15,)
    assert torch.equal(out.params, zoo[out.sources])


def test_noise_has_absolute_sigma():
    zoo, _ = _zoo()
    n = 2000
    out = baselines.noise_addition(zoo, 0.5, n, _gen())
    noise = out.params - zoo[out.sources]
    m = noise.numel()
    assert abs(noise.std().item() - 0.5) < 5 * 0.5 / math.sqrt(2 * m)


def test_relative_noise_sigma_zero_exact_and_scales_per_tensor():
    zoo, layout = _zoo()
    out = baselines.relative_noise(zoo, layout, 0.0, 10, _gen())
    assert torch.equal(out.params, zoo[out.sources])

    n, sigma = 3000, 0.1
    out = baselines.relative_noise(zoo, layout, sigma, n, _gen(2))
    noise = out.params - zoo[out.sources]
    for seg in layout.segments:
        tensor_std = zoo[out.sources, seg.start:seg.stop].std(dim=1, correction=0)  # (n,)
        ratio = noise[:, seg.start:seg.stop] / (sigma * tensor_std[:, None])  # should be N(0, 1)
        tol = 5 / math.sqrt(2 * ratio.numel())
        assert abs(ratio.std().item() - 1.0) < tol, seg.name


def test_averaged_of_one_is_a_zoo_member():
    zoo, _ = _zoo()
    out = baselines.averaged(zoo, 1, 12, _gen())
    assert out.sources.shape == (12, 1)
    assert torch.equal(out.params, zoo[out.sources[:, 0]])


def test_averaged_is_mean_of_distinct_sources():
    zoo, _ = _zoo()
    out = baselines.averaged(zoo, 16, 30, _gen())
    assert out.sources.shape == (30, 16)
    assert all(len(set(row.tolist())) == 16 for row in out.sources)
    assert_close(out.params, zoo[out.sources].mean(dim=1))
    clipped = baselines.averaged(zoo, 100, 4, _gen())  # m clipped to K: every model is the zoo mean
    assert_close(clipped.params, zoo.mean(dim=0).expand(4, -1))


def test_gaussian_matches_zoo_marginals():
    zoo, _ = _zoo(k=50)
    n = 20000
    out = baselines.gaussian(zoo, n, _gen())
    assert out.sources is None and out.params.shape == (n, zoo.shape[1])
    mu, sd = zoo.mean(0), zoo.std(0)
    # standard errors of a sample mean and sample std of n Gaussian draws; 5 of them over 40 coords
    assert torch.all((out.params.mean(0) - mu).abs() < 5 * sd / math.sqrt(n))
    assert torch.all((out.params.std(0) - sd).abs() < 5 * sd / math.sqrt(2 * n))


def test_same_generator_same_baseline():
    zoo, layout = _zoo()
    a = baselines.relative_noise(zoo, layout, 0.05, 5, _gen(9))
    b = baselines.relative_noise(zoo, layout, 0.05, 5, _gen(9))
    assert torch.equal(a.params, b.params) and torch.equal(a.sources, b.sources)
