"""Parameter autoencoders: normalized parameter vector (B, D) <-> latent (B, latent_dim).

Two architectures, chosen by `autoencoder.arch`:

- `MLPAutoencoder` (the default): Linear -> LeakyReLU layers to a small latent and back. A
  parameter vector's positions have no spatial order that shared kernels could exploit, and a
  zoo of one training run lies close to a low-dimensional subspace: the MLP reconstructs the
  centred zoo better than as many principal components do, so the decoder keeps the differences
  between zoo models that the generator should reproduce, in a few seconds of training.
- `ParamAutoencoder` (`arch="conv"`, p-diff v2): the vector is read as a 1-channel sequence;
  strided convolutions shrink it, a linear layer maps to the latent, and a mirrored decoder maps
  back. At this project's CPU step counts its decoded models lose most of the zoo's behavioural
  diversity even from well-spread latents (notebook 07 measures their parameter recall); the
  paper preset and the ResNet presets keep it.

Both add noise to the input and to the latent during training (p-diff's augmentation: it makes
the decoder robust to the imprecise latents the diffusion model will produce).
"""
from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.nn import functional as F

from ..core.config import AutoencoderConfig
from ..core.registry import AUTOENCODERS
from ..core.training import Progress, TrainHistory, batch_index, train_steps
from .diffusion import randn


def padded_length(dim: int, num_layers: int) -> int:
    """Smallest length >= dim divisible by the encoder's stride product 2**num_layers."""
    stride = 2**num_layers
    return -(-dim // stride) * stride


def _block(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.GroupNorm(min(8, channels), channels), nn.LeakyReLU(0.2))


class NoisyAutoencoder(nn.Module):
    """What both architectures share: `encode`, `decode`, and the augmented training pass."""

    def __init__(self, dim: int, config: AutoencoderConfig) -> None:
        super().__init__()
        self.dim = dim
        self.input_noise = config.input_noise
        self.latent_noise = config.latent_noise

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Training pass with noise augmentation on the input and on the latent."""
        x = x + self.input_noise * randn(tuple(x.shape), generator, x.device)
        z = self.encode(x)
        z = z + self.latent_noise * randn(tuple(z.shape), generator, z.device)
        return self.decode(z)


class ParamAutoencoder(NoisyAutoencoder):
    """Encoder (B, D) -> (B, latent_dim); decoder back to (B, D)."""

    def __init__(self, dim: int, config: AutoencoderConfig) -> None:
        super().__init__(dim, config)
        channels, k = list(config.channels), config.kernel
        self.padded = padded_length(dim, len(channels))
        self.reduced = self.padded // 2 ** len(channels)
        widths = [1, *channels]
        self.encoder = nn.Sequential(*(_block(nn.Conv1d(a, b, k, stride=2, padding=k // 2), b)
                                       for a, b in itertools.pairwise(widths)))
        self.to_latent = nn.Linear(channels[-1] * self.reduced, config.latent_dim)
        self.from_latent = nn.Linear(config.latent_dim, channels[-1] * self.reduced)
        rev = list(reversed(channels))
        self.decoder = nn.Sequential(*(_block(nn.ConvTranspose1d(a, b, k, stride=2, padding=k // 2, output_padding=1), b)
                                       for a, b in zip(rev, rev[1:] + [rev[-1]])))
        self.out = nn.Conv1d(rev[-1], 1, k, padding=k // 2)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h = F.pad(x, (0, self.padded - self.dim))[:, None, :]  # (B, 1, L)
        h = self.encoder(h)  # (B, C, L / 2**n)
        return self.to_latent(h.flatten(1))  # (B, latent)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.from_latent(z).reshape(z.shape[0], -1, self.reduced)
        h = self.out(self.decoder(h))  # (B, 1, L)
        return h[:, 0, : self.dim]


class MLPAutoencoder(NoisyAutoencoder):
    """Encoder (B, D) -> hidden layers -> (B, latent_dim); a mirrored decoder back to (B, D)."""

    def __init__(self, dim: int, config: AutoencoderConfig) -> None:
        super().__init__(dim, config)
        widths = [dim, *config.hidden, config.latent_dim]
        self.encoder = _mlp(widths)
        self.decoder = _mlp(widths[::-1])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


def _mlp(widths: list[int]) -> nn.Sequential:
    """Linear layers with LeakyReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers[:-1])


def build_autoencoder(dim: int, config: AutoencoderConfig) -> NoisyAutoencoder:
    """The autoencoder `config.arch` names (see `core.registry.AUTOENCODERS`), for vectors of length `dim`."""
    return AUTOENCODERS.get(config.arch)(dim, config)


def train_autoencoder(data: torch.Tensor, config: AutoencoderConfig, generator: torch.Generator,
                      progress: Progress | None = None, precision: str = "fp32") -> tuple[NoisyAutoencoder, TrainHistory]:
    """Train on normalized vectors `data` (K, D) with MSE; returns the model (eval mode) and losses."""
    model = build_autoencoder(data.shape[1], config).to(data.device)

    def loss(net: nn.Module) -> torch.Tensor:
        batch = data[batch_index(len(data), config.batch_size, generator, data.device)]
        return F.mse_loss(net(batch, generator), batch)

    history = train_steps(model, loss, config.steps, config.lr, config.weight_decay, progress, precision)
    return model, history


@torch.no_grad()
def reconstruction_error(model: NoisyAutoencoder, data: torch.Tensor) -> float:
    """Mean squared error of the noise-free reconstruction."""
    return F.mse_loss(model.decode(model.encode(data)), data).item()
