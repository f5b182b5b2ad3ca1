"""Denoisers for latent diffusion over parameter-autoencoder latents: the networks that predict
the noise in a noisy latent, and `build_denoiser` that makes the one a config names.

The latent of a `ParamAutoencoder` comes out of a linear layer: its positions have no spatial
order, and each has its own distribution. `ConvDenoiser` (p-diff's design) slides shared kernels
over those positions, with a receptive field of part of the vector; it cannot give each
position its own spread or tie far-apart positions together, and its samples collapse towards
the mean (notebook 07 measures the spread of its samples against the training latents').

`MLPDenoiser` sees the whole latent in every layer: residual blocks of LayerNorm -> Linear
(+ time embedding) -> SiLU -> Linear, the shape of DiT/ADM blocks without attention. Trained on
whitened latents (whitening.py) it reproduces the training latents' spread with every sampler
and without clipping (notebook 07, benchmarks/bench_fidelity.py).
"""
from __future__ import annotations

import itertools
import math

import torch
from torch import nn
from torch.nn import functional as F

from ..core.config import DiffusionConfig
from ..core.registry import DENOISERS


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps, (B,) -> (B, dim) (transformer positional code)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


class ConvBlock(nn.Module):
    """Conv1d + GroupNorm + SiLU with the time embedding added as a per-channel bias."""

    def __init__(self, c_in: int, c_out: int, kernel: int, time_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2)
        self.norm = nn.GroupNorm(min(8, c_out), c_out)
        self.time = nn.Linear(time_dim, c_out)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.conv(x)) + self.time(temb)[:, :, None]
        return F.silu(h)


class ConvDenoiser(nn.Module):
    """1D-conv encoder-decoder over the latent vector, seen as a 1-channel sequence (p-diff).

    Encoder blocks widen the channels, decoder blocks narrow them again with skip connections;
    every block receives the sinusoidal time embedding. Input and output are (B, L).
    """

    def __init__(self, length: int, channels: tuple[int, ...] = (32, 64, 64), kernel: int = 7,
                 time_dim: int = 64) -> None:
        super().__init__()
        self.length = length
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        widths = [1, *channels]
        self.down = nn.ModuleList(ConvBlock(a, b, kernel, time_dim) for a, b in itertools.pairwise(widths))
        rev = list(reversed(channels))
        self.up = nn.ModuleList(ConvBlock(a + skip, b, kernel, time_dim)
                                for a, skip, b in zip(rev, rev, rev[1:] + [channels[0]]))
        self.out = nn.Conv1d(channels[0], 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.time_mlp(timestep_embedding(t, self.time_dim))
        h = x[:, None, :]  # (B, 1, L)
        skips = []
        for block in self.down:
            h = block(h, temb)
            skips.append(h)
        for block in self.up:
            h = block(torch.cat([h, skips.pop()], dim=1), temb)
        return self.out(h)[:, 0, :]  # (B, L)


class ResidualBlock(nn.Module):
    """h + W2 SiLU(W1 LN(h) + time(temb)): pre-norm MLP block with the time embedding as a bias."""

    def __init__(self, width: int, time_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.time = nn.Linear(time_dim, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(F.silu(self.fc1(self.norm(h)) + self.time(temb)))


class MLPDenoiser(nn.Module):
    """(B, L) noisy latents and (B,) timesteps -> (B, L) predicted noise (epsilon prediction).

    Input projection to `width`, `depth` residual blocks that each receive the sinusoidal time
    embedding (through a small MLP, as in `ConvDenoiser`), LayerNorm and a zero-initialised
    output projection.

    `gaussian_skip` is the schedule's `sqrt_one_minus_alphas_cumprod` (T,). With it the output
    is sqrt(1 - abar_t) x_t + network: for unit-variance Gaussian data that first term is the
    exact E[eps | x_t], so the network learns only how the data differ from N(0, I), and an
    untrained denoiser is already the optimal one for whitened Gaussian data. It matters for
    deterministic samplers: DDIM integrates eps errors against d sqrt((1 - abar) / abar), which
    spans 0..160 and lies mostly at high t, where a plain network must reproduce eps = x_t to
    high precision: without the skip, DDIM-50 made models at chance accuracy on digits; with it
    every one is good (benchmarks/bench_fidelity.py checks the worst DDIM model). Ancestral DDPM
    re-injects noise and forgets those errors: it is fine either way.
    """

    def __init__(self, length: int, width: int = 128, depth: int = 2, time_dim: int = 128,
                 gaussian_skip: torch.Tensor | None = None, conditional: bool = False) -> None:
        super().__init__()
        self.register_buffer("gaussian_skip", gaussian_skip.float() if gaussian_skip is not None else None,
                             persistent=False)
        self.length = length
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.inp = nn.Linear(length, width)
        self.blocks = nn.ModuleList(ResidualBlock(width, time_dim) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, length)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        # A condition (a checkpoint's accuracy in [0, 1]) is embedded like the time step and added
        # to its embedding; a learned "no condition" vector stands in where it is dropped or absent.
        self.conditional = conditional
        if conditional:
            self.cond_mlp = nn.Sequential(nn.Linear(time_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
            self.null_cond = nn.Parameter(torch.zeros(time_dim))

    def condition_embedding(self, cond: torch.Tensor | None, drop: torch.Tensor | None, batch: int) -> torch.Tensor:
        """(B, time_dim): the embedded condition, the null vector where `drop` is True or `cond` is None."""
        null = self.null_cond.expand(batch, -1)
        if cond is None:
            return null
        emb = self.cond_mlp(timestep_embedding(cond * 1000, self.time_dim))  # 0.1 % resolution, like t
        return emb if drop is None else torch.where(drop[:, None], null, emb)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None,
                drop: torch.Tensor | None = None) -> torch.Tensor:
        temb = self.time_mlp(timestep_embedding(t, self.time_dim))  # (B, time_dim)
        if self.conditional:
            temb = temb + self.condition_embedding(cond, drop, x.shape[0])
        h = self.inp(x)  # (B, width)
        for block in self.blocks:
            h = block(h, temb)
        eps = self.out(F.silu(self.norm(h)))  # (B, L)
        if self.gaussian_skip is not None:
            eps = eps + self.gaussian_skip[t][:, None] * x
        return eps


def build_denoiser(config: DiffusionConfig, length: int, process: nn.Module) -> nn.Module:
    """The denoiser `diffusion.denoiser` names (see `core.registry.DENOISERS`), for latents of `length` values."""
    return DENOISERS.get(config.denoiser)(config, length, process)


def build_mlp_denoiser(config: DiffusionConfig, length: int, process: nn.Module) -> nn.Module:
    """"mlp" (the default): `MLPDenoiser` with the Gaussian skip of the process (DDPM's noise
    estimate, or flow.py's velocity)."""
    return MLPDenoiser(length, config.width, config.depth, config.time_dim,
                       gaussian_skip=process.gaussian_skip, conditional=config.condition != "none")


def build_conv_denoiser(config: DiffusionConfig, length: int, process: nn.Module) -> nn.Module:
    """"conv": p-diff's `ConvDenoiser` (kept for the paper preset and comparisons)."""
    return ConvDenoiser(length, config.channels, config.kernel, config.time_dim)


class GuidedDenoiser(nn.Module):
    """Classifier-free guidance (Ho & Salimans 2022) around a conditional denoiser:
    eps = eps(x, t) + scale * (eps(x, t | c) - eps(x, t)).

    scale 0 is unconditional sampling (the conditional pass is not even run), 1 conditional,
    above 1 pushes further towards the condition. `accuracy` is in percent.
    """

    def __init__(self, denoiser: nn.Module, accuracy: float, scale: float) -> None:
        super().__init__()
        self.denoiser, self.accuracy, self.scale = denoiser, accuracy, scale
        self.length = denoiser.length

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        uncond = self.denoiser(x, t)
        if self.scale == 0:
            return uncond
        cond = torch.full((x.shape[0],), self.accuracy / 100, device=x.device)
        return uncond + self.scale * (self.denoiser(x, t, cond) - uncond)
