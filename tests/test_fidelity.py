"""Set-level fidelity metrics on constructed cases with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import linalg

from pdiff.judge import fidelity, metrics


def gaussian(n: int, d: int, seed: int, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    return mean + std * torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def scipy_frechet(a: torch.Tensor, b: torch.Tensor) -> float:
    """The textbook FID formula with scipy's sqrtm, for N > D where it is well conditioned."""
    a, b = a.numpy(), b.numpy()
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    cross = linalg.sqrtm(s1 @ s2).real
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(cross))


def test_identical_sets_are_perfect():
    x = gaussian(60, 8, 0)
    precision, recall = fidelity.precision_recall(x, x.clone(), k=3)
    assert precision == 1.0 and recall == 1.0
    density, coverage = fidelity.density_coverage(x, x.clone(), k=3)
    assert coverage == 1.0 and density >= 1.0
    assert fidelity.frechet_distance(x, x.clone()) == pytest.approx(0.0, abs=1e-9)
    assert fidelity.spread_ratio(x, x) == pytest.approx(1.0)


def test_collapsed_set_has_no_recall_and_no_spread():
    real = gaussian(200, 16, 1)
    collapsed = real.mean(0, keepdim=True).repeat(100, 1) + 1e-9 * gaussian(100, 16, 2)
    precision, recall = fidelity.precision_recall(real, collapsed, k=3)
    assert recall < 0.05  # the collapsed set's balls are tiny: they hold no real sample
    assert precision == 1.0  # ... while the mean itself lies inside the real manifold
    assert fidelity.spread_ratio(collapsed, real) < 1e-6
    # coverage stays above 0: in 16 dims the k-NN balls of real points near the centre hold the mean
    assert fidelity.density_coverage(real, collapsed, k=3)[1] < 0.5
    report = fidelity.fidelity_report(real, collapsed, torch.Generator().manual_seed(0), repeats=2)
    assert report["recall"] < 0.05 < report["self_recall"]
    assert report["fd"] > 5 * report["fd_floor"]


def test_frechet_matches_closed_form_of_two_gaussians():
    # N(0, I) vs N(mu, 4 I) in D dims: FD = |mu|^2 + D (1 - 2)^2; the estimate converges to it.
    d, mu = 4, 0.5
    a, b = gaussian(20000, d, 3), gaussian(20000, d, 4, mean=mu, std=2.0)
    assert fidelity.frechet_distance(a, b) == pytest.approx(d * mu**2 + d * 1.0, rel=0.03)


def test_frechet_equals_scipy_formula_and_is_finite_when_n_below_d():
    a, b = gaussian(300, 10, 5), gaussian(250, 10, 6, mean=0.3, std=1.5) @ gaussian(10, 10, 7) * 0.3
    assert fidelity.frechet_distance(a, b) == pytest.approx(scipy_frechet(a, b), rel=1e-6)
    small_a, small_b = gaussian(20, 100, 8), gaussian(30, 100, 9, std=2.0)
    fd = fidelity.frechet_distance(small_a, small_b)
    assert math.isfinite(fd) and fd > 0
    assert fidelity.frechet_distance(small_a, small_a) == pytest.approx(0.0, abs=1e-9)


def test_split_half_floor_is_below_a_shifted_set():
    ref = gaussian(200, 6, 10)
    gen = torch.Generator().manual_seed(0)
    floor = fidelity.split_half_frechet(ref, gen)
    assert 0 < floor < fidelity.frechet_distance(ref[:100], gaussian(100, 6, 11, mean=1.0))
    report = fidelity.fidelity_report(ref, gaussian(100, 6, 12), gen)  # a fresh draw: at the floor
    assert report["fd"] == pytest.approx(report["fd_floor"], rel=0.6)
    assert report["recall"] == pytest.approx(report["self_recall"], abs=0.15)


def test_spread_ratio_of_a_scaled_set_is_the_scale():
    x = gaussian(50, 12, 13)
    x[:, 3] = 7.0  # an unused dimension is skipped, not divided by zero
    scaled = 0.37 * (x - x.mean(0)) + 5.0
    assert fidelity.spread_ratio(scaled, x) == pytest.approx(0.37)


def test_distinct_rows_and_within_group_iou():
    labels = torch.tensor([0, 1, 2, 3])
    preds = torch.tensor([[0, 1, 2, 0], [0, 1, 2, 0], [1, 1, 2, 3], [1, 1, 2, 0]])
    assert metrics.distinct_rows(preds) == 3
    assert metrics.distinct_rows(preds[:1].repeat(5, 1)) == 1
    # an equal-size yardstick: all rows give the count itself; one row is always one vector; 50 rows
    # drawn from 100 copies of vector A and 100 of B hold both
    g = torch.Generator().manual_seed(0)
    assert metrics.distinct_rows_of_subsets(preds, 4, 20, g) == 3 and metrics.distinct_rows_of_subsets(preds, 9, 20, g) == 3
    assert metrics.distinct_rows_of_subsets(preds, 1, 20, g) == 1
    halves = torch.cat([preds[:1].repeat(100, 1), preds[2:3].repeat(100, 1)])
    assert metrics.distinct_rows_of_subsets(halves, 50, 20, g) == 2
    # wrong sets {3}, {3}, {0}, {0, 3}: pair IoUs 1, 0, 1/2, 0, 1/2, 1/2 -> mean 5/12
    assert metrics.mean_off_diagonal(metrics.wrong_sets_iou(preds, labels)) == pytest.approx(2.5 / 6)
