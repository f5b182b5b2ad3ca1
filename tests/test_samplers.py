"""The samplers, checked against closed forms.

For Gaussian data x0 ~ N(mu, Sigma) the best possible noise predictor is known exactly:
x_t = a x0 + s eps with a = sqrt(abar_t), s = sqrt(1 - abar_t), so
E[eps | x_t] = s (a^2 Sigma + s^2 I)^-1 (x_t - a mu). With it, a correct sampler must reproduce
the data's mean and covariance. A perfect predictor that knows one x0 cannot tell samplers apart
(any noise term ends at x0), this one can.
"""
from __future__ import annotations

import itertools
import math

import pytest
import torch
from test_diffusion import perfect_predictor, schedule64
from torch.testing import assert_close

from pdiff.core.registry import SAMPLERS
from pdiff.generator.diffusion import GaussianDiffusion
from pdiff.generator.samplers import DDIMSampler, DDPMSampler, Sampler, make_sampler, register_sampler, sample_loop
from pdiff.generator.sampling import LatentStats

MU = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
SIGMA = torch.tensor([[1.0, 0.6, 0.0], [0.6, 0.5, -0.1], [0.0, -0.1, 0.3]], dtype=torch.float64)


def optimal_predictor(timesteps: int = 1000, mu: torch.Tensor = MU, sigma: torch.Tensor = SIGMA):
    """The exact E[eps | x_t] for x0 ~ N(mu, sigma), in float64."""
    abar = schedule64(timesteps)[2]
    eye = torch.eye(len(mu), dtype=torch.float64)

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, s = abar[t[0]].sqrt(), (1 - abar[t[0]]).sqrt()
        cov = a**2 * sigma + s**2 * eye
        return (s * torch.linalg.solve(cov, (x_t.double() - a * mu).T).T).to(x_t.dtype)

    return model


def run(sampler: Sampler, n: int, seed: int, noise: torch.Tensor | None = None) -> torch.Tensor:
    model = optimal_predictor(sampler.process.timesteps)
    return sample_loop(model, sampler, (n, 3), torch.Generator().manual_seed(seed), noise=noise).double()


def assert_gaussian_like(x: torch.Tensor, mu: torch.Tensor = MU, sigma: torch.Tensor = SIGMA) -> None:
    """Mean within 4 standard errors, covariance entries within 4 standard errors (n samples)."""
    n = x.shape[0]
    se_mean = (sigma.diagonal() / n).sqrt()
    assert ((x.mean(0) - mu).abs() < 4 * se_mean).all(), (x.mean(0), mu)
    cov = torch.cov(x.T)
    var = sigma.diagonal()
    se_cov = ((sigma**2 + var[:, None] * var[None]) / n).sqrt()  # Var of a sample covariance entry
    assert ((cov - sigma).abs() < 4 * se_cov).all(), (cov, sigma)


def test_ddpm_1000_with_the_optimal_predictor_reproduces_mean_and_covariance():
    process = GaussianDiffusion(1000)
    assert_gaussian_like(run(DDPMSampler(process), 4000, seed=0))


def test_ddim_eta1_over_all_steps_is_ddpm_step_for_step():
    """DDIM with eta = 1 and every timestep is the DDPM posterior: the same noise draws give the
    same path (a wrong DDIM noise term would not), and so the same marginals."""
    process = GaussianDiffusion(1000)
    ddpm = run(DDPMSampler(process), 2000, seed=1)
    ddim = run(DDIMSampler(process, steps=1000, eta=1.0), 2000, seed=1)
    assert_close(ddim, ddpm, atol=2e-3, rtol=2e-3)
    assert_gaussian_like(ddim)


def test_ddim_50_eta0_matches_its_closed_form_recursion():
    """Deterministic DDIM over 50 steps, against the update x_s = sqrt(abar_s) x0 + sqrt(1 - abar_s) eps
    computed here in float64 from the schedule's definition."""
    process = GaussianDiffusion(1000)
    sampler = DDIMSampler(process, steps=50, eta=0.0)
    noise = torch.randn(500, 3, generator=torch.Generator().manual_seed(2))
    out = run(sampler, 500, seed=0, noise=noise)
    abar = schedule64()[2]
    model = optimal_predictor()
    x = noise.double()
    times = sampler.timesteps
    for i, t in enumerate(times):
        eps = model(x, torch.full((500,), t))
        x0 = (x - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()
        prev = abar[times[i + 1]] if i + 1 < len(times) else torch.tensor(1.0, dtype=torch.float64)
        x = prev.sqrt() * x0 + (1 - prev).sqrt() * eps
    assert_close(out, x, atol=1e-3, rtol=1e-3)
    assert_gaussian_like(out)  # 50 deterministic steps already sample the data distribution


def test_respaced_ddpm_posterior_matches_its_formula_and_recovers_x0():
    """Over fewer steps, the jump t -> s is a one-step process with beta = 1 - abar_t / abar_s.
    (Plugging in E[x0 | x_t] drops Var(x0 | x_t) from each big jump, so respaced DDPM
    under-disperses: the mean is right, the spread is not, unlike the full chain above.)"""
    process = GaussianDiffusion(1000)
    sampler = DDPMSampler(process, steps=100)
    abar = schedule64()[2]
    times = sampler.timesteps
    t, s = times[10], times[11]
    beta = 1 - abar[t] / abar[s]
    assert_close(sampler.coef_x0[10].double(), abar[s].sqrt() * beta / (1 - abar[t]), rtol=1e-6, atol=0)
    assert_close(sampler.coef_xt[10].double(), (1 - beta).sqrt() * (1 - abar[s]) / (1 - abar[t]), rtol=1e-6, atol=0)
    assert_close(sampler.log_variance[10].double(), (beta * (1 - abar[s]) / (1 - abar[t])).log(), rtol=1e-6, atol=0)
    out = run(sampler, 4000, seed=3)
    assert ((out.mean(0) - MU).abs() < 4 * (SIGMA.diagonal() / 4000).sqrt()).all()
    x0 = torch.randn(4, 16, generator=torch.Generator().manual_seed(4))
    out = sample_loop(perfect_predictor(x0), DDPMSampler(process, steps=25), (4, 16), torch.Generator().manual_seed(5))
    assert_close(out, x0, atol=1e-4, rtol=1e-4)


def test_full_ddpm_uses_the_process_posterior_exactly():
    process = GaussianDiffusion(100)
    sampler = DDPMSampler(process)
    times = torch.tensor(sampler.timesteps)
    assert sampler.timesteps == list(range(99, -1, -1))
    assert torch.equal(sampler.coef_x0, process.posterior_mean_coef1[times])
    assert torch.equal(sampler.coef_xt, process.posterior_mean_coef2[times])


@pytest.mark.parametrize("steps", [1, 2, 10, 50, 1000])
def test_ddim_with_perfect_predictor_recovers_x0(steps):
    process = GaussianDiffusion(1000)
    x0 = torch.randn(4, 16, generator=torch.Generator().manual_seed(4)) * 2
    out = sample_loop(perfect_predictor(x0), DDIMSampler(process, steps), (4, 16), torch.Generator().manual_seed(5))
    assert_close(out, x0, atol=1e-4, rtol=1e-4)


def test_samplers_are_seeded_and_deterministic_ddim_follows_its_noise():
    from pdiff.generator.flow import RectifiedFlow

    processes = {"ddpm": GaussianDiffusion(30), "flow": RectifiedFlow(30)}
    model = lambda x, t: 0.5 * x
    for name, cls in SAMPLERS.items():
        process = processes[cls.kind]
        a = sample_loop(model, make_sampler(name, process, 10), (3, 5), torch.Generator().manual_seed(12))
        b = sample_loop(model, make_sampler(name, process, 10), (3, 5), torch.Generator().manual_seed(12))
        c = sample_loop(model, make_sampler(name, process, 10), (3, 5), torch.Generator().manual_seed(13))
        assert torch.equal(a, b) and not torch.equal(a, c), name
    process = processes["ddpm"]
    noise = torch.randn(2, 4, generator=torch.Generator().manual_seed(8))
    first = sample_loop(model, DDIMSampler(process, 10), (2, 4), noise=noise)
    assert torch.equal(first, sample_loop(model, DDIMSampler(process, 10), (2, 4), noise=noise.clone()))


def test_timesteps_cover_both_ends_in_decreasing_order_and_defaults():
    process = GaussianDiffusion(1000)
    for steps in (1, 2, 7, 50, 1000, 5000):
        times = DDIMSampler(process, steps).timesteps
        assert times[0] == 999 and len(times) == min(steps, 1000)
        assert all(a > b for a, b in itertools.pairwise(times))
        if steps > 1:
            assert times[-1] == 0
    assert len(DDPMSampler(process).timesteps) == 1000  # 0 steps: the sampler's default
    assert len(DDIMSampler(process).timesteps) == 50


def test_the_callback_sees_every_visited_timestep_in_order():
    process = GaussianDiffusion(50)
    x0 = torch.randn(2, 6, generator=torch.Generator().manual_seed(10))
    for sampler in (DDPMSampler(process), DDIMSampler(process, 7)):
        seen: list[int] = []
        sample_loop(perfect_predictor(x0, 50), sampler, (2, 6), torch.Generator().manual_seed(11),
                    callback=lambda step, pred, seen=seen: seen.append(step))
        assert seen == sampler.timesteps


# --------------------------------------------------------------------------- x0-clipping


def test_clip_bounds_are_the_standardized_range_widened_by_a_tenth():
    latents = torch.tensor([[0.0, 10.0], [2.0, 14.0], [4.0, 12.0]])
    stats = LatentStats.fit(latents)
    mean = latents.mean(0)
    scale = (latents - mean).std()
    z = (latents - mean) / scale
    width = z.max(0).values - z.min(0).values
    assert_close(stats.low, z.min(0).values - 0.1 * width)
    assert_close(stats.high, z.max(0).values + 0.1 * width)


def test_clipping_bounds_x0_and_keeps_the_noise_estimate_consistent():
    process = GaussianDiffusion(100)
    low, high = torch.tensor([-1.0, -2.0]), torch.tensor([1.0, 0.5])
    sampler = DDIMSampler(process, 10, clip=(low, high))
    x = torch.tensor([[5.0, -5.0], [0.1, 0.2]])
    eps = torch.tensor([[0.3, -0.2], [0.0, 0.1]])
    t = torch.tensor([40, 40])
    x0, eps_used = sampler.predict_x0(eps, t, x)
    raw = process.predict_x0(x, t, eps)
    assert_close(x0, torch.maximum(torch.minimum(raw, high), low))
    a, s = process.sqrt_alphas_cumprod[40], process.sqrt_one_minus_alphas_cumprod[40]
    assert_close(a * x0 + s * eps_used, x)  # x0 and the noise estimate describe the same x_t
    inside = (raw >= low) & (raw <= high)
    assert_close(eps_used[inside], eps[inside])  # unclipped entries keep their noise estimate
    # a sample far outside the box: every x0 the sampler produces lies inside it
    seen = []
    sample_loop(lambda x, t: -x, sampler, (64, 2), torch.Generator().manual_seed(0),
                callback=lambda step, pred: seen.append(pred))
    assert all(((p >= low - 1e-6) & (p <= high + 1e-6)).all() for p in seen)


# --------------------------------------------------------------------------- registering a sampler


class JumpSampler(Sampler):
    """A toy: one network call at t = T-1, then straight to the predicted x0."""

    name = "jump"
    help = "toy: predict x0 once"

    def set_timesteps(self, steps: int) -> None:
        self.timesteps = [self.process.timesteps - 1]

    def step(self, eps, index, x, generator):
        t = torch.full((x.shape[0],), self.timesteps[index], dtype=torch.long, device=x.device)
        x0, _ = self.predict_x0(eps, t, x)
        return x0, x0


def test_a_registered_sampler_is_accepted_and_used(monkeypatch):
    from pdiff.core.config import RunConfig, with_overrides
    from pdiff.core.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown sample.sampler 'jump'; samplers: ddpm, ddim"):
        with_overrides(RunConfig(), {"sample.sampler": "jump"})
    monkeypatch.setitem(SAMPLERS, "jump", JumpSampler)
    assert with_overrides(RunConfig(), {"sample.sampler": "jump"}).sample.sampler == "jump"
    process = GaussianDiffusion(20)
    x0 = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    out = sample_loop(perfect_predictor(x0, 20), make_sampler("jump", process), (3, 4), torch.Generator().manual_seed(2))
    assert_close(out, x0, atol=1e-4, rtol=1e-4)
    assert math.isfinite(out.sum().item())


def test_register_sampler_needs_a_name():
    class Nameless(Sampler):
        pass

    with pytest.raises(ValueError, match="name"):
        register_sampler(Nameless)
