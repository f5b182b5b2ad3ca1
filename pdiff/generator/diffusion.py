"""Latent DDPM: the noise schedule, the forward process, the loss, and the denoiser network.

The process is a small object that holds only the schedule; the denoiser network is passed in
(as in improved-diffusion), and the samplers that walk it backwards live in samplers.py. The schedule is built in float64 and stored as float32 buffers, so
`.to(device)` moves it. All randomness comes from an explicit `torch.Generator`.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..core.config import DiffusionConfig
from ..core.registry import PROCESSES

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t) -> predicted noise
Bounds = tuple[torch.Tensor, torch.Tensor]  # per-dimension (low, high) to clip x0-predictions to


def randn(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Gaussian noise drawn on the generator's device, then moved: same seed, same noise anywhere."""
    gen_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gen_device).to(device)


class GaussianDiffusion(nn.Module):
    """DDPM with linear betas and epsilon prediction (Ho et al. 2020)."""

    kind = "ddpm"

    def __init__(self, timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 2e-2) -> None:
        super().__init__()
        self.timesteps = timesteps
        betas = torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)
        alphas = 1.0 - betas
        alphas_cumprod = torch.cumprod(alphas, dim=0)
        alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        # Posterior q(x_{t-1} | x_t, x_0), DDPM eq. 6-7.
        posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
        buffers = {
            "betas": betas,
            "alphas_cumprod": alphas_cumprod,
            "alphas_cumprod_prev": alphas_cumprod_prev,
            "sqrt_alphas_cumprod": alphas_cumprod.sqrt(),
            "sqrt_one_minus_alphas_cumprod": (1.0 - alphas_cumprod).sqrt(),
            "sqrt_recip_alphas_cumprod": (1.0 / alphas_cumprod).sqrt(),
            "sqrt_recipm1_alphas_cumprod": (1.0 / alphas_cumprod - 1.0).sqrt(),
            "posterior_variance": posterior_variance,
            # log of the variance, clipped: the variance is 0 at t=0.
            "posterior_log_variance_clipped": torch.log(torch.cat([posterior_variance[1:2], posterior_variance[1:]])),
            "posterior_mean_coef1": betas * alphas_cumprod_prev.sqrt() / (1.0 - alphas_cumprod),
            "posterior_mean_coef2": (1.0 - alphas_cumprod_prev) * alphas.sqrt() / (1.0 - alphas_cumprod),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value.float(), persistent=False)
        self.alphas_cumprod_64 = alphas_cumprod  # float64 on the CPU, for samplers that respace the schedule

    def path_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(T,) weights of x0 and of the noise in x_t at every timestep: sqrt(abar_t), sqrt(1 - abar_t)."""
        return self.sqrt_alphas_cumprod, self.sqrt_one_minus_alphas_cumprod

    @property
    def gaussian_skip(self) -> torch.Tensor:
        """(T,) sqrt(1 - abar_t): E[eps | x_t] / x_t for unit-variance Gaussian data (denoisers.py)."""
        return self.sqrt_one_minus_alphas_cumprod

    @staticmethod
    def _at(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """values[t] shaped to broadcast against `like` (B, ...)."""
        return values[t].reshape(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Forward process, DDPM eq. 4: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""
        return self._at(self.sqrt_alphas_cumprod, t, x0) * x0 + self._at(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return self._at(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t - self._at(self.sqrt_recipm1_alphas_cumprod, t, x_t) * eps

    def q_posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of q(x_{t-1} | x_t, x_0), DDPM eq. 7."""
        mean = self._at(self.posterior_mean_coef1, t, x_t) * x0 + self._at(self.posterior_mean_coef2, t, x_t) * x_t
        return mean, self._at(self.posterior_variance, t, x_t)

    def training_loss(self, model: Denoiser, x0: torch.Tensor, generator: torch.Generator | None = None,
                      t: torch.Tensor | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Simple epsilon-prediction MSE, DDPM eq. 14."""
        if t is None:
            t = torch.randint(0, self.timesteps, (x0.shape[0],), generator=generator,
                              device=generator.device if generator is not None else x0.device).to(x0.device)
        if noise is None:
            noise = randn(tuple(x0.shape), generator, x0.device)
        return F.mse_loss(model(self.q_sample(x0, t, noise), t), noise)


def build_gaussian(config: DiffusionConfig) -> GaussianDiffusion:
    """`diffusion.kind="ddpm"`: DDPM with the config's linear beta schedule."""
    return GaussianDiffusion(config.timesteps, config.beta_start, config.beta_end)


def build_process(config: DiffusionConfig) -> nn.Module:
    """The process `diffusion.kind` names (see `core.registry.PROCESSES`): DDPM or rectified flow."""
    return PROCESSES.get(config.kind)(config)
