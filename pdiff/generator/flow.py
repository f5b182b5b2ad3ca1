"""Flow matching on the same latents: rectified flow (straight paths from data to noise) and its samplers.

A second generator family beside DDPM (DeepWeightFlow, arXiv 2601.05052, generates weights this
way). The process is the conditional flow matching of Lipman et al. 2023 with the straight path of
rectified flow (Liu et al. 2022):

    x_t = (1 - t) x0 + t eps,  t in (0, 1],  the network predicts the velocity u = eps - x0,

trained with the MSE against u. Time runs on the same integer grid as DDPM's timesteps
(index i is t = (i + 1) / T), so the denoiser networks, their time embedding and classifier-free
guidance are shared unchanged. The MLP denoiser's Gaussian skip is the optimal velocity for
unit-variance Gaussian data, E[u | x_t] = (2t - 1) / ((1 - t)^2 + t^2) x_t, as DDPM's is the
optimal noise estimate (denoisers.py). Sampling integrates dx/dt = u from t = 1 (noise) down to 0:
Euler's method (`euler`) or Heun's second-order method (`heun`, two network calls a step).
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..core.config import DiffusionConfig
from .diffusion import Denoiser, randn
from .samplers import Sampler


class RectifiedFlow(nn.Module):
    """The straight-path flow: times (T,) = (1..T) / T, the velocity target, and x0 from a velocity."""

    kind = "flow"

    def __init__(self, timesteps: int = 1000) -> None:
        super().__init__()
        self.timesteps = timesteps
        times = torch.arange(1, timesteps + 1, dtype=torch.float64) / timesteps
        skip = (2 * times - 1) / ((1 - times) ** 2 + times ** 2)  # E[eps - x0 | x_t] / x_t for Gaussian x0
        self.register_buffer("times", times.float(), persistent=False)
        self.register_buffer("gaussian_skip", skip.float(), persistent=False)

    def path_weights(self) -> tuple[Tensor, Tensor]:
        """(T,) weights of x0 and of the noise in x_t at every time point: 1 - t and t."""
        return 1 - self.times, self.times

    def time(self, index: Tensor, like: Tensor) -> Tensor:
        """t at integer `index` (B,), shaped to broadcast against `like` (B, ...)."""
        return self.times[index].reshape(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0: Tensor, index: Tensor, noise: Tensor) -> Tensor:
        """The path: x_t = (1 - t) x0 + t eps."""
        t = self.time(index, x0)
        return (1 - t) * x0 + t * noise

    def predict_x0(self, x_t: Tensor, index: Tensor, velocity: Tensor) -> Tensor:
        """x0 = x_t - t u (exact on the straight path)."""
        return x_t - self.time(index, x_t) * velocity

    def training_loss(self, model: Denoiser, x0: Tensor, generator: torch.Generator | None = None,
                      t: Tensor | None = None, noise: Tensor | None = None) -> Tensor:
        """Conditional flow matching: MSE between the predicted and the path's velocity eps - x0."""
        if t is None:
            t = torch.randint(0, self.timesteps, (x0.shape[0],), generator=generator,
                              device=generator.device if generator is not None else x0.device).to(x0.device)
        if noise is None:
            noise = randn(tuple(x0.shape), generator, x0.device)
        return F.mse_loss(model(self.q_sample(x0, t, noise), t), noise - x0)


def build_flow(config: DiffusionConfig) -> RectifiedFlow:
    """`diffusion.kind="flow"`: a rectified flow on `diffusion.timesteps` time points."""
    return RectifiedFlow(config.timesteps)


class EulerSampler(Sampler):
    """Euler's method on the flow's ODE: x_{t'} = x_t + (t' - t) u(x_t, t), down to t = 0."""

    name = "euler"
    help = "flow matching: Euler's method, deterministic, 100 steps by default"
    kind: ClassVar[str] = "flow"

    @staticmethod
    def default_steps(timesteps: int) -> int:
        return min(100, timesteps)

    def next_time(self, index: int, like: Tensor) -> Tensor:
        """t at the next point of the grid (0 after the last)."""
        if index + 1 == len(self.timesteps):
            return torch.zeros(like.shape[0], *([1] * (like.dim() - 1)), device=like.device)
        return self._time(index + 1, like)

    def _time(self, index: int, like: Tensor) -> Tensor:
        return self.process.time(self._index(index, like), like)

    def _index(self, index: int, like: Tensor) -> Tensor:
        return torch.full((like.shape[0],), self.timesteps[index], device=like.device, dtype=torch.long)

    def velocity(self, raw: Tensor, index: int, x: Tensor) -> tuple[Tensor, Tensor]:
        """(x0, velocity) from the network's output; x0 bounded to `clip` when set, and the
        velocity recomputed from the bounded x0 so both describe one x_t."""
        x0 = self.process.predict_x0(x, self._index(index, x), raw)
        if self.clip is None:
            return x0, raw
        x0 = x0.clamp(*self.clip)
        return x0, (x - x0) / self._time(index, x)

    def step(self, raw: Tensor, index: int, x: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        x0, velocity = self.velocity(raw, index, x)
        return x + (self.next_time(index, x) - self._time(index, x)) * velocity, x0


class HeunSampler(EulerSampler):
    """Heun's method (the trapezoid rule; EDM, Karras et al. 2022): an Euler step, the velocity
    again at its end, and the step taken with the average; the last step to t = 0 is Euler's."""

    name = "heun"
    help = "flow matching: Heun's second-order method, deterministic, 50 steps (100 network calls) by default"

    @staticmethod
    def default_steps(timesteps: int) -> int:
        return min(50, timesteps)

    def advance(self, model: Denoiser, index: int, x: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        x0, first = self.velocity(model(x, self._index(index, x)), index, x)
        dt = self.next_time(index, x) - self._time(index, x)
        guess = x + dt * first
        if index + 1 == len(self.timesteps):
            return guess, x0
        _, second = self.velocity(model(guess, self._index(index + 1, x)), index + 1, guess)
        return x + dt * (first + second) / 2, x0
