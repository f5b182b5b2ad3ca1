"""The parameter autoencoder: shapes, padding, seeded noise augmentation, and that it learns."""
from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from pdiff.autoencoder import ParamAutoencoder, padded_length, reconstruction_error, train_autoencoder
from pdiff.config import AutoencoderConfig


@pytest.mark.parametrize("dim,layers,expected", [(394, 4, 400), (400, 4, 400), (1, 3, 8), (2048, 5, 2048),
                                                 (2049, 5, 2080)])
def test_padded_length_is_the_next_multiple_of_the_stride_product(dim, layers, expected):
    assert padded_length(dim, layers) == expected


@pytest.mark.parametrize("dim,channels", [(394, (16, 32, 64, 64)), (37, (8, 16)), (2048, (64, 128, 256, 256, 32))])
def test_encode_decode_shapes(dim, channels):
    config = AutoencoderConfig(channels=channels, latent_dim=12)
    model = ParamAutoencoder(dim, config).eval()
    x = torch.randn(3, dim)
    z = model.encode(x)
    assert z.shape == (3, 12)
    assert model.decode(z).shape == (3, dim)
    assert model(x, torch.Generator().manual_seed(0)).shape == (3, dim)
    convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv1d)]
    assert [c.out_channels for c in convs] == list(channels) and all(c.stride == (2,) for c in convs)


def test_noise_augmentation_is_seeded_and_absent_from_encode():
    torch.manual_seed(0)
    model = ParamAutoencoder(50, AutoencoderConfig(channels=(8, 16), latent_dim=8, latent_noise=0.1)).eval()
    x = torch.randn(4, 50)
    a = model(x, torch.Generator().manual_seed(1))
    b = model(x, torch.Generator().manual_seed(1))
    c = model(x, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(model.encode(x), model.encode(x))  # encode/decode are noise-free
    clean = model.decode(model.encode(x))
    quiet = ParamAutoencoder(50, AutoencoderConfig(channels=(8, 16), latent_dim=8, input_noise=0.0, latent_noise=0.0))
    quiet.load_state_dict(model.state_dict())
    assert_close(quiet.eval()(x, torch.Generator().manual_seed(1)), clean)


def _low_rank_data(k: int = 64, dim: int = 100, rank: int = 3) -> torch.Tensor:
    """(k, dim) rows on a random rank-3 subspace, scaled to unit overall variance."""
    g = torch.Generator().manual_seed(0)
    data = torch.randn(k, rank, generator=g) @ torch.randn(rank, dim, generator=g)
    return (data - data.mean()) / data.std()


def _best_linear_error(data: torch.Tensor, rank: int) -> float:
    """MSE of the best rank-`rank` affine reconstruction (PCA): what a linear code of that size can do."""
    centred = data - data.mean(0)
    u, s, vt = torch.linalg.svd(centred, full_matrices=False)
    return (centred - (u[:, :rank] * s[:rank]) @ vt[:rank]).pow(2).mean().item()


def test_autoencoder_learns_a_low_rank_dataset():
    """A rank-3 dataset is exactly representable by a 16-dim latent. The data variance is 1 and the
    best rank-2 linear code still leaves ~0.2 of it; an error below 0.05 (and below a quarter of
    the rank-2 error) means the autoencoder captured all three directions, noise augmentation on.
    """
    data = _low_rank_data()
    config = AutoencoderConfig(channels=(16, 32), latent_dim=16, steps=300, batch_size=32, lr=3e-3)
    untrained = ParamAutoencoder(data.shape[1], config).eval()
    assert reconstruction_error(untrained, data) > 0.5  # the bound is not met by chance
    model, history = train_autoencoder(data, config, torch.Generator().manual_seed(1))
    error = reconstruction_error(model, data)
    rank2 = _best_linear_error(data, 2)
    assert rank2 > 0.1
    assert error < 0.05 and error < rank2 / 4, (error, rank2)
    assert not model.training
    assert len(history.loss) == 300 // history.every + (300 % history.every != 0)
    assert sum(history.loss[-10:]) / 10 < history.loss[0] / 5  # the training loss fell too


def test_training_is_reproducible_from_the_generator():
    data = _low_rank_data(k=16, dim=30)
    config = AutoencoderConfig(channels=(8,), latent_dim=4, steps=5, batch_size=8)
    torch.manual_seed(0)
    a, ha = train_autoencoder(data, config, torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    b, hb = train_autoencoder(data, config, torch.Generator().manual_seed(3))
    assert ha.loss == hb.loss
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb), name
