"""MLP denoiser with the Gaussian skip, and latent whitening."""
from __future__ import annotations

import pytest
import torch

from pdiff.core.training import train_steps
from pdiff.generator.denoisers import MLPDenoiser
from pdiff.generator.diffusion import GaussianDiffusion
from pdiff.generator.samplers import DDIMSampler, sample_loop
from pdiff.generator.whitening import LatentWhitening
from pdiff.judge import fidelity


def test_untrained_skip_denoiser_is_the_optimal_denoiser_of_unit_gaussian_data():
    # E[eps | x_t] = sqrt(1 - abar_t) x_t when x_0 ~ N(0, I): the zero-initialised network adds nothing
    process = GaussianDiffusion(100)
    net = MLPDenoiser(6, width=32, depth=1, time_dim=16, gaussian_skip=process.sqrt_one_minus_alphas_cumprod)
    x, t = torch.randn(5, 6), torch.tensor([0, 10, 50, 90, 99])
    torch.testing.assert_close(net(x, t), process.sqrt_one_minus_alphas_cumprod[t][:, None] * x)
    samples = sample_loop(net, DDIMSampler(process, 20), (4000, 6), torch.Generator().manual_seed(0))
    assert samples.std(0).mean().item() == pytest.approx(1.0, abs=0.05)
    assert samples.mean(0).abs().max().item() < 0.1


def test_whitening_keeps_the_principal_axes_and_round_trips():
    g = torch.Generator().manual_seed(0)
    axes = torch.linalg.qr(torch.randn(8, 8, generator=g)).Q
    coords = torch.randn(300, 3, generator=g) * torch.tensor([10.0, 1.0, 1e-3])
    latents = coords @ axes[:, :3].T + 5.0  # rank 3, one axis with 1e-8 of the variance
    whitening = LatentWhitening.fit(latents, variance=0.9999)
    assert whitening.dim == 2
    u = whitening.standardize(latents)
    torch.testing.assert_close(u.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(u.std(0), torch.ones(2), atol=1e-5, rtol=0)
    assert (whitening.unstandardize(u) - latents).abs().max().item() < 0.01  # only the dropped axis is lost
    full = LatentWhitening.fit(latents, variance=1.0)
    torch.testing.assert_close(full.unstandardize(full.standardize(latents)), latents, atol=1e-4, rtol=0)
    again = LatentWhitening.from_state(whitening.state())
    torch.testing.assert_close(again.standardize(latents), u)
    low, high = whitening.bounds(torch.device("cpu"))
    assert (u >= low).all() and (u <= high).all()


def test_mlp_denoiser_learns_a_thin_curve_without_clipping():
    # 200 points along a bent curve in 16 dims (one SGD trajectory in miniature): DDIM without
    # clipping stays on it and keeps its spread
    g = torch.Generator().manual_seed(1)
    s = torch.linspace(-1, 1, 200)[:, None]
    curve = torch.cat([s, s.square(), 0.3 * s**3], 1) @ torch.randn(3, 16, generator=g)
    data = curve + 0.01 * torch.randn(200, 16, generator=g)
    whitening = LatentWhitening.fit(data)
    u = whitening.standardize(data)
    process = GaussianDiffusion(200)
    torch.manual_seed(0)
    net = MLPDenoiser(whitening.dim, width=64, depth=2, time_dim=32,
                      gaussian_skip=process.sqrt_one_minus_alphas_cumprod)
    train_steps(net, lambda m: process.training_loss(m, u[torch.randint(0, 200, (64,), generator=g)], g), 800, 3e-3)
    samples = whitening.unstandardize(sample_loop(net, DDIMSampler(process, 20), (100, whitening.dim), g))
    assert 0.7 < fidelity.spread_ratio(samples, data) < 1.3
    precision, recall = fidelity.precision_recall(data, samples, k=5)
    assert precision > 0.7 and recall > 0.7  # a ConvDenoiser (16, 32), 400 steps: precision 0.25
