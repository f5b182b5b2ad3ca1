"""Closed-form checks of the latent DDPM: schedule, forward process, posterior, loss, denoiser
(the samplers are checked in test_samplers.py).

Reference values are computed here in float64 straight from the formulas of DDPM (Ho et al.
2020) and DDIM (Song et al. 2021), independently of the buffers the process stores.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from pdiff.generator.denoisers import ConvDenoiser, timestep_embedding
from pdiff.generator.diffusion import GaussianDiffusion


def schedule64(timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 2e-2):
    """(betas, alphas, alphas_cumprod) in float64, from the definitions."""
    betas = torch.tensor([beta_start + (beta_end - beta_start) * i / (timesteps - 1) for i in range(timesteps)],
                         dtype=torch.float64)
    alphas = 1 - betas
    abar = torch.tensor([math.prod(alphas[: i + 1].tolist()) for i in range(timesteps)], dtype=torch.float64)
    return betas, alphas, abar


def perfect_predictor(x0: torch.Tensor, timesteps: int = 1000):
    """The denoiser that knows x0: eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t), in float64."""
    abar = schedule64(timesteps)[2]

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = abar[t][:, None]
        return ((x_t.double() - a.sqrt() * x0.double()) / (1 - a).sqrt()).to(x_t.dtype)

    return model


def test_schedule_end_points_and_cumprod():
    process = GaussianDiffusion(1000, 1e-4, 2e-2)
    betas, _, abar = schedule64()
    assert process.betas.dtype == torch.float32 and process.betas.shape == (1000,)
    assert process.betas[0].item() == pytest.approx(1e-4, rel=1e-6)
    assert process.betas[-1].item() == pytest.approx(2e-2, rel=1e-6)
    assert_close(process.betas, betas.float())
    assert_close(process.alphas_cumprod, abar.float())
    assert_close(process.alphas_cumprod_prev, torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]]).float())
    assert_close(process.sqrt_one_minus_alphas_cumprod, (1 - abar).sqrt().float())
    # abar_T is tiny: x_T is almost pure noise, as DDPM intends.
    assert process.alphas_cumprod[-1].item() < 1e-4


def test_schedule_buffers_follow_module_to():
    process = GaussianDiffusion(10).to(torch.float64)
    assert process.alphas_cumprod.dtype == torch.float64
    assert "alphas_cumprod" in dict(process.named_buffers())


def test_q_sample_matches_formula():
    process = GaussianDiffusion(1000)
    abar = schedule64()[2]
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(5, 12, generator=g), torch.randn(5, 12, generator=g)
    t = torch.tensor([0, 1, 250, 998, 999])
    expected = abar[t].sqrt()[:, None] * x0.double() + (1 - abar[t]).sqrt()[:, None] * noise.double()
    assert_close(process.q_sample(x0, t, noise), expected.float())


def test_predict_x0_inverts_q_sample():
    process = GaussianDiffusion(1000)
    g = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    t = torch.tensor([0, 10, 500, 900])
    assert_close(process.predict_x0(process.q_sample(x0, t, noise), t, noise), x0, atol=1e-4, rtol=1e-4)


def test_posterior_mean_and_variance_match_ddpm_eq7():
    process = GaussianDiffusion(1000)
    betas, alphas, abar = schedule64()
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    g = torch.Generator().manual_seed(2)
    x0, x_t = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    t = torch.tensor([0, 1, 500, 999])
    # DDPM eq. 7: mu = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x0 + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t
    coef0 = (abar_prev[t].sqrt() * betas[t] / (1 - abar[t]))[:, None]
    coef_t = (alphas[t].sqrt() * (1 - abar_prev[t]) / (1 - abar[t]))[:, None]
    variance = ((1 - abar_prev[t]) / (1 - abar[t]) * betas[t])[:, None]
    mean, var = process.q_posterior(x0, x_t, t)
    assert_close(mean, (coef0 * x0.double() + coef_t * x_t.double()).float())
    assert_close(var, variance.float())
    assert var[0].item() == 0.0  # t=0: the last step is deterministic
    # the clipped log-variance used for sampling equals log(variance) wherever it is > 0
    full_variance = (1 - abar_prev) / (1 - abar) * betas
    assert_close(process.posterior_log_variance_clipped[1:], full_variance[1:].log().float())


def test_training_loss_is_eps_mse_with_given_t_and_noise():
    process = GaussianDiffusion(100)
    g = torch.Generator().manual_seed(3)
    x0, noise = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    t = torch.tensor([0, 50, 99])
    zero = lambda x, t: torch.zeros_like(x)
    assert_close(process.training_loss(zero, x0, t=t, noise=noise), noise.pow(2).mean())
    assert process.training_loss(perfect_predictor(x0, 100), x0, t=t, noise=noise).item() < 1e-8


def test_timestep_embedding_shape_and_values():
    t = torch.tensor([0, 1, 17, 999])
    emb = timestep_embedding(t, 8)
    assert emb.shape == (4, 8)
    half = 4
    freqs = torch.tensor([math.exp(-math.log(10000.0) * i / half) for i in range(half)], dtype=torch.float64)
    args = t.double()[:, None] * freqs[None]
    assert_close(emb, torch.cat([args.cos(), args.sin()], dim=1).float())
    assert_close(emb[0], torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0]))  # t=0: cos 1, sin 0
    odd = timestep_embedding(t, 7)
    assert odd.shape == (4, 7)
    assert torch.equal(odd[:, -1], torch.zeros(4))  # odd width: zero-padded last column
    assert_close(odd[:, :6], timestep_embedding(t, 6))


def test_conv_denoiser_shape_zero_init_and_trainable():
    torch.manual_seed(0)
    net = ConvDenoiser(length=24, channels=(8, 16, 16), kernel=5, time_dim=16)
    x = torch.randn(3, 24)
    t = torch.tensor([0, 10, 99])
    out = net(x, t)
    assert out.shape == (3, 24)
    assert torch.equal(out, torch.zeros(3, 24))  # zero-initialised final conv
    # the zero init does not block learning: one step moves the output
    loss = (net(x, t) - torch.ones(3, 24)).pow(2).mean()
    loss.backward()
    torch.optim.SGD(net.parameters(), lr=0.1).step()
    assert net(x, t).abs().max().item() > 0
    # the time embedding reaches the output: same x, different t, different prediction
    same_x = x[:1].expand(2, -1)
    pred = net(same_x, torch.tensor([0, 150]))
    assert not torch.allclose(pred[0], pred[1])
