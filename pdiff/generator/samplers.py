"""Samplers: how a trained noise predictor is walked from Gaussian noise back to data.

In the spirit of diffusers' schedulers: a sampler is told how many steps to take
(`set_timesteps`), says which timesteps it visits (`timesteps`), and turns one network output into
the next sample (`step`). Every sampler predicts x0 through the same path (`predict_x0`), which
also bounds x0 to a box when asked and makes the noise estimate consistent with the bound.
`sample_loop` is the one loop that calls the network. Adding a sampler is one subclass plus
`register_sampler`; config validation and the app list samplers from `core.registry.SAMPLERS`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..core.registry import SAMPLERS
from .diffusion import Bounds, Denoiser, randn

StepCallback = Callable[[int, Tensor], None]  # (timestep, x0 prediction)


class Sampler:
    """Base class: the timestep grid and the shared x0-prediction; subclasses define `step`.

    `kind` names the process the sampler walks ("ddpm" for GaussianDiffusion, "flow" for
    RectifiedFlow, see flow.py); config validation keeps the two matched."""

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    kind: ClassVar[str] = "ddpm"

    def __init__(self, process: nn.Module, steps: int = 0, eta: float = 0.0, clip: Bounds | None = None) -> None:
        self.process = process
        self.eta = eta
        self.clip = clip
        self.timesteps: list[int] = []
        self.set_timesteps(steps or self.default_steps(process.timesteps))

    @staticmethod
    def default_steps(timesteps: int) -> int:
        """Steps taken when the config asks for 0 (the sampler's own default)."""
        return timesteps

    def set_timesteps(self, steps: int) -> None:
        """Evenly spaced timesteps from T-1 down to 0, both ends included, no repeats."""
        self.timesteps = even_timesteps(self.process.timesteps, steps)

    def predict_x0(self, eps: Tensor, t: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """x0 from the noise estimate (DDPM eq. 15), bounded to `clip` when set; the noise
        estimate is then recomputed from the bounded x0, so both describe one x_t."""
        p = self.process
        x0 = p.predict_x0(x, t, eps)
        if self.clip is None:
            return x0, eps
        x0 = x0.clamp(*self.clip)
        eps = (x - p._at(p.sqrt_alphas_cumprod, t, x) * x0) / p._at(p.sqrt_one_minus_alphas_cumprod, t, x)
        return x0, eps

    def step(self, eps: Tensor, index: int, x: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """(x at the next timestep of the grid, the x0 prediction at this one)."""
        raise NotImplementedError

    def advance(self, model: Denoiser, index: int, x: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """One step of the grid: the network once at this timestep, then `step`. A sampler that
        needs the network more than once per step (Heun's, flow.py) overrides this."""
        t = torch.full((x.shape[0],), self.timesteps[index], device=x.device, dtype=torch.long)
        return self.step(model(x, t), index, x, generator)


def even_timesteps(timesteps: int, steps: int) -> list[int]:
    """`steps` timesteps evenly spaced from T-1 down to 0 (rounded, deduplicated, clipped to T)."""
    steps = max(1, min(steps, timesteps))
    grid = torch.linspace(timesteps - 1, 0, steps, dtype=torch.float64).round().long()
    return list(dict.fromkeys(grid.tolist()))


class DDPMSampler(Sampler):
    """Ancestral sampling (Ho et al. 2020, algorithm 2, posterior-mean form).

    Over all T steps it uses the process's posterior q(x_{t-1} | x_t, x0) as it is. Over fewer
    steps the schedule is respaced (Nichol & Dhariwal 2021): each jump t -> s gets the beta
    1 - abar_t / abar_s, so the posterior is that of a T'-step process with the same abar.
    """

    name = "ddpm"
    help = "ancestral DDPM: stochastic, all T steps by default (fewer: a respaced schedule)"

    def set_timesteps(self, steps: int) -> None:
        super().set_timesteps(steps)
        p, device = self.process, self.process.betas.device
        times = torch.tensor(self.timesteps)
        if len(self.timesteps) == p.timesteps:  # the full chain: the process's own posterior
            self.coef_x0, self.coef_xt = p.posterior_mean_coef1[times], p.posterior_mean_coef2[times]
            self.log_variance = p.posterior_log_variance_clipped[times]
            return
        abar = p.alphas_cumprod_64[times]
        abar_prev = torch.cat([p.alphas_cumprod_64[times[1:]], torch.ones(1, dtype=torch.float64)])
        beta = 1 - abar / abar_prev
        variance = beta * (1 - abar_prev) / (1 - abar)
        self.coef_x0 = (beta * abar_prev.sqrt() / (1 - abar)).float().to(device)
        self.coef_xt = ((1 - abar_prev) * (1 - beta).sqrt() / (1 - abar)).float().to(device)
        self.log_variance = variance.clamp(min=1e-20).log().float().to(device)  # the last step adds no noise

    def step(self, eps: Tensor, index: int, x: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        t = torch.full((x.shape[0],), self.timesteps[index], device=x.device, dtype=torch.long)
        x0, _ = self.predict_x0(eps, t, x)
        mean = self.coef_x0[index] * x0 + self.coef_xt[index] * x
        if index + 1 == len(self.timesteps):
            return mean, x0
        return mean + (0.5 * self.log_variance[index]).exp() * randn(tuple(x.shape), generator, x.device), x0


class DDIMSampler(Sampler):
    """DDIM (Song et al. 2021, eq. 12): eta = 0 is deterministic, eta = 1 DDPM-like."""

    name = "ddim"
    help = "DDIM: deterministic at eta 0, 50 steps by default"

    @staticmethod
    def default_steps(timesteps: int) -> int:
        return min(50, timesteps)

    def set_timesteps(self, steps: int) -> None:
        """The grid, and each step's coefficients computed once (a step then costs the network and
        two multiply-adds): sqrt(abar_prev) for x0, sqrt(1 - abar_prev - sigma^2) for the noise
        estimate, sigma for fresh noise. Float32, the same arithmetic a step did before, so
        samples stay bit-identical."""
        super().set_timesteps(steps)
        p = self.process
        times = torch.tensor(self.timesteps, device=p.alphas_cumprod.device)
        abar = p.alphas_cumprod[times]
        abar_prev = torch.cat([p.alphas_cumprod[times[1:]], torch.ones(1, device=times.device)])
        sigma = self.eta * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)).sqrt()
        self.coef_x0 = abar_prev.sqrt()
        self.coef_eps = (1 - abar_prev - sigma**2).clamp(min=0).sqrt()
        self.sigma = sigma

    def step(self, eps: Tensor, index: int, x: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        t = torch.full((x.shape[0],), self.timesteps[index], device=x.device, dtype=torch.long)
        x0, eps = self.predict_x0(eps, t, x)
        x_next = self.coef_x0[index] * x0 + self.coef_eps[index] * eps
        if self.eta > 0 and index + 1 < len(self.timesteps):
            x_next = x_next + self.sigma[index] * randn(tuple(x.shape), generator, x.device)
        return x_next, x0


def register_sampler(cls: type[Sampler]) -> type[Sampler]:
    """Make `cls.name` usable as `sample.sampler` (also usable as a class decorator)."""
    if not cls.name:
        raise ValueError("a sampler class needs a non-empty `name`")
    SAMPLERS.register(cls.name, cls)
    return cls


def make_sampler(name: str, process: nn.Module, steps: int = 0, eta: float = 0.0,
                 clip: Bounds | None = None) -> Sampler:
    """The sampler `name` names (see `core.registry.SAMPLERS`); an unknown name lists the valid ones."""
    return SAMPLERS.get(name)(process, steps, eta, clip)


@torch.no_grad()
def sample_loop(model: Denoiser, sampler: Sampler, shape: tuple[int, ...], generator: torch.Generator | None = None,
                device: torch.device | str = "cpu", callback: StepCallback | None = None,
                noise: Tensor | None = None) -> Tensor:
    """Start from Gaussian noise (or `noise`) and take every step of the sampler's grid."""
    device = torch.device(device)
    x = noise.to(device) if noise is not None else randn(shape, generator, device)
    for index, step in enumerate(sampler.timesteps):
        x, x0 = sampler.advance(model, index, x, generator)
        if callback is not None:
            callback(step, x0)
    return x
