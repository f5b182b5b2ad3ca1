"""Flow matching (rectified flow), checked against closed forms and by learning.

On the straight path x_t = (1 - t) x0 + t eps the exact velocity for x0 ~ N(mu, Sigma) is known:
with C = (1 - t)^2 Sigma + t^2 I and r = x_t - (1 - t) mu,
    E[eps - x0 | x_t] = (t I - (1 - t) Sigma) C^-1 r - mu.
Integrating it from N(0, I) at t = 1 must reproduce the data's mean and covariance. A velocity
that knows one x0 is constant along the path, so every step count recovers x0 exactly.
"""
from __future__ import annotations

import pytest
import torch
from test_samplers import MU, SIGMA, assert_gaussian_like
from torch.testing import assert_close

from pdiff.core.config import DiffusionConfig, RunConfig, with_overrides
from pdiff.core.errors import ConfigError
from pdiff.core.training import train_steps
from pdiff.generator.denoisers import build_denoiser
from pdiff.generator.diffusion import build_process
from pdiff.generator.flow import EulerSampler, HeunSampler, RectifiedFlow
from pdiff.generator.samplers import make_sampler, sample_loop


def optimal_velocity(process: RectifiedFlow, mu: torch.Tensor = MU, sigma: torch.Tensor = SIGMA):
    times = torch.arange(1, process.timesteps + 1, dtype=torch.float64) / process.timesteps
    eye = torch.eye(len(mu), dtype=torch.float64)

    def model(x_t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        t = times[index[0]]
        c = (1 - t) ** 2 * sigma + t**2 * eye
        r = x_t.double() - (1 - t) * mu
        return ((t * eye - (1 - t) * sigma) @ torch.linalg.solve(c, r.T)).T.to(x_t.dtype) - mu.to(x_t.dtype)

    return model


def test_the_path_and_its_velocity():
    process = RectifiedFlow(100)
    x0, noise = torch.randn(5, 3), torch.randn(5, 3)
    index = torch.tensor([0, 9, 49, 98, 99])
    t = ((index + 1) / 100.0)[:, None]
    assert_close(process.q_sample(x0, index, noise), (1 - t) * x0 + t * noise)
    x_t = process.q_sample(x0, index, noise)
    assert_close(process.predict_x0(x_t, index, noise - x0), x0)
    assert process.times[-1] == 1.0 and process.times[0] == pytest.approx(0.01)


def test_the_gaussian_skip_is_the_optimal_velocity_for_standard_normal_data():
    process = RectifiedFlow(50)
    optimal = optimal_velocity(process, torch.zeros(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64))
    x = torch.randn(4, 3, dtype=torch.float64)
    for i in (0, 10, 24, 49):
        index = torch.full((4,), i)
        assert_close(optimal(x, index), process.gaussian_skip[i].double() * x, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,steps", [("euler", 1), ("euler", 7), ("heun", 1), ("heun", 5)])
def test_a_velocity_that_knows_x0_recovers_it_in_any_number_of_steps(name, steps):
    process = RectifiedFlow(100)
    x0 = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))

    def model(x_t, index):
        return (x_t - x0) / process.time(index, x_t)  # eps - x0, read off the path

    out = sample_loop(model, make_sampler(name, process, steps), (6, 4), torch.Generator().manual_seed(2))
    assert_close(out, x0, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("sampler,steps", [(HeunSampler, 50), (EulerSampler, 400)])
def test_the_optimal_velocity_transports_noise_to_the_data_distribution(sampler, steps):
    process = RectifiedFlow(1000)
    x = sample_loop(optimal_velocity(process), sampler(process, steps), (4000, 3),
                    torch.Generator().manual_seed(0)).double()
    assert_gaussian_like(x)


def test_clipping_bounds_the_x0_predictions():
    process = RectifiedFlow(100)
    seen = []
    walker = make_sampler("euler", process, 10, clip=(torch.full((2,), -0.5), torch.full((2,), 0.5)))
    sample_loop(lambda x, t: torch.full_like(x, 3.0), walker, (8, 2), torch.Generator().manual_seed(0),
                callback=lambda step, x0: seen.append(x0))
    assert all(x0.abs().max() <= 0.5 + 1e-6 for x0 in seen)


def test_a_small_mlp_learns_a_two_cluster_distribution_with_flow_matching():
    """Seconds of training on two tight clusters at +-2: samples land near one of them."""
    torch.manual_seed(0)
    config = DiffusionConfig(kind="flow", timesteps=200, width=64, depth=2, time_dim=32)
    process = RectifiedFlow(config.timesteps)
    net = build_denoiser(config, 2, process)
    gen = torch.Generator().manual_seed(0)
    data = torch.cat([torch.full((256, 2), 2.0), torch.full((256, 2), -2.0)]) + 0.05 * torch.randn(512, 2)

    def loss(model):
        idx = torch.randint(0, 512, (128,), generator=gen)
        return process.training_loss(model, data[idx], gen)

    train_steps(net, loss, 1500, 3e-3)
    with torch.no_grad():
        out = sample_loop(net, HeunSampler(process, 25), (400, 2), torch.Generator().manual_seed(1))
    distance = torch.minimum((out - 2).norm(dim=1), (out + 2).norm(dim=1))
    assert distance.median() < 0.3
    assert 0.3 < (out[:, 0] > 0).double().mean() < 0.7  # both clusters, not one


def test_the_sampler_must_walk_the_configured_process():
    with pytest.raises(ConfigError, match="sample.sampler 'ddpm' walks a ddpm process but diffusion.kind is 'flow'; "
                                          "use one of: euler, heun"):
        with_overrides(RunConfig(), {"diffusion.kind": "flow"})
    with pytest.raises(ConfigError, match="'heun' walks a flow process"):
        with_overrides(RunConfig(), {"sample.sampler": "heun"})
    with pytest.raises(ConfigError, match="unknown diffusion.kind 'score'; kinds: ddpm, flow"):
        with_overrides(RunConfig(), {"diffusion.kind": "score"})
    assert with_overrides(RunConfig(), {"diffusion.kind": "flow", "sample.sampler": "euler"}).diffusion.kind == "flow"


@pytest.mark.parametrize("kind", ["ddpm", "flow"])
def test_path_weights_are_the_forward_process(kind):
    """The weights the Denoising page shows are the ones q_sample mixes x0 and the noise with."""
    process = build_process(DiffusionConfig(kind=kind, timesteps=50))
    x0, noise = torch.randn(50, 4), torch.randn(50, 4)
    index = torch.arange(50)
    signal, noise_weight = process.path_weights()
    expected = signal[:, None] * x0 + noise_weight[:, None] * noise
    assert_close(process.q_sample(x0, index, noise), expected)
