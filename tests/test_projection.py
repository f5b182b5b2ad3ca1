"""Projections: shape, determinism, shared space, closed-form PCA facts."""
from __future__ import annotations

import torch
from torch.testing import assert_close

from pdiff.judge import projection


def _points(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) * torch.linspace(0.1, 3.0, d)


def test_pca_recovers_dominant_axis_with_fixed_sign():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(100, generator=g)
    x = torch.zeros(100, 3)
    x[:, 1] = 5 * t
    x[:, 2] = 0.1 * torch.randn(100, generator=g)
    coords, ratio = projection.pca_2d(x)
    assert coords.shape == (100, 2)
    assert_close(coords[:, 0], 5 * (t - t.mean()), atol=1e-2, rtol=0)  # positive loading on axis 1; the small 3rd axis tilts it slightly
    assert ratio[0] > 0.99 and ratio.sum() <= 1.0 + 1e-6
    flipped, _ = projection.pca_2d(-x)  # sign convention follows the data, not the SVD
    assert_close(flipped[:, 0], -coords[:, 0], atol=1e-4, rtol=1e-4)


def test_pca_deterministic_and_small_inputs():
    x = _points(40, 10, 1)
    a, ra = projection.pca_2d(x)
    b, rb = projection.pca_2d(x.clone())
    assert torch.equal(a, b) and torch.equal(ra, rb)
    assert projection.pca_2d(x[:1])[0].shape == (1, 2)
    assert projection.pca_2d(x[:, :1])[0].shape == (40, 2)


def test_fit_projection_shares_one_space():
    groups = {"zoo": _points(30, 6, 2), "generated": _points(10, 6, 3), "empty": torch.zeros(0, 6)}
    out = projection.fit_projection(groups, "pca")
    assert list(out) == ["zoo", "generated", "empty"]
    assert [v.shape[0] for v in out.values()] == [30, 10, 0]
    joint = projection.pca_2d(torch.cat([groups["zoo"], groups["generated"]]))[0]
    assert_close(torch.cat([out["zoo"], out["generated"]]), joint)


def test_umap_deterministic_one_row_per_model():
    groups = {"zoo": _points(60, 12, 4), "generated": _points(20, 12, 5)}
    a = projection.fit_projection(groups, "umap", seed=0)
    b = projection.fit_projection(groups, "umap", seed=0)
    assert a["zoo"].shape == (60, 2) and a["generated"].shape == (20, 2)
    assert torch.equal(a["zoo"], b["zoo"]) and torch.equal(a["generated"], b["generated"])
    assert torch.isfinite(a["zoo"]).all()


def test_umap_small_n():
    assert projection.umap_2d(_points(6, 5, 6), n_neighbors=15).shape == (6, 2)  # n_neighbors clipped
    assert projection.umap_2d(_points(3, 5, 7)).shape == (3, 2)  # PCA fallback
