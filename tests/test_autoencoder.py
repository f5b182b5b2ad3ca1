"""The parameter autoencoders (MLP and conv): shapes, padding, seeded noise augmentation, that
they learn, and the centred normalizer they train on."""
from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from pdiff.core.config import AutoencoderConfig, RunConfig, config_from_dict, config_to_dict, with_overrides
from pdiff.core.errors import ConfigError
from pdiff.generator.autoencoder import (
    MLPAutoencoder,
    ParamAutoencoder,
    build_autoencoder,
    padded_length,
    reconstruction_error,
    train_autoencoder,
)
from pdiff.generator.normalizer import Normalizer
from pdiff.zoo.params import ParamLayout


@pytest.mark.parametrize("dim,layers,expected", [(394, 4, 400), (400, 4, 400), (1, 3, 8), (2048, 5, 2048),
                                                 (2049, 5, 2080)])
def test_padded_length_is_the_next_multiple_of_the_stride_product(dim, layers, expected):
    assert padded_length(dim, layers) == expected


@pytest.mark.parametrize("dim,channels", [(394, (16, 32, 64, 64)), (37, (8, 16)), (2048, (64, 128, 256, 256, 32))])
def test_encode_decode_shapes(dim, channels):
    config = AutoencoderConfig(arch="conv", channels=channels, latent_dim=12)
    model = ParamAutoencoder(dim, config).eval()
    x = torch.randn(3, dim)
    z = model.encode(x)
    assert z.shape == (3, 12)
    assert model.decode(z).shape == (3, dim)
    assert model(x, torch.Generator().manual_seed(0)).shape == (3, dim)
    convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv1d)]
    assert [c.out_channels for c in convs] == list(channels) and all(c.stride == (2,) for c in convs)


@pytest.mark.parametrize("dim,hidden", [(394, (256,)), (37, ()), (2048, (128, 64))])
def test_mlp_encode_decode_shapes(dim, hidden):
    model = build_autoencoder(dim, AutoencoderConfig(arch="mlp", hidden=hidden, latent_dim=12)).eval()
    assert isinstance(model, MLPAutoencoder)
    x = torch.randn(3, dim)
    assert model.encode(x).shape == (3, 12) and model.decode(model.encode(x)).shape == (3, dim)
    linears = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [*hidden, 12]


@pytest.mark.parametrize("arch", ["conv", "mlp"])
def test_noise_augmentation_is_seeded_and_absent_from_encode(arch):
    torch.manual_seed(0)
    model = build_autoencoder(50, AutoencoderConfig(arch=arch, channels=(8, 16), latent_dim=8, latent_noise=0.1)).eval()
    x = torch.randn(4, 50)
    a = model(x, torch.Generator().manual_seed(1))
    b = model(x, torch.Generator().manual_seed(1))
    c = model(x, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(model.encode(x), model.encode(x))  # encode/decode are noise-free
    clean = model.decode(model.encode(x))
    quiet = build_autoencoder(50, AutoencoderConfig(arch=arch, channels=(8, 16), latent_dim=8, input_noise=0.0,
                                                    latent_noise=0.0))
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


@pytest.mark.parametrize("arch", ["conv", "mlp"])
def test_autoencoder_learns_a_low_rank_dataset(arch):
    """A rank-3 dataset is exactly representable by a 16-dim latent. The data variance is 1 and the
    best rank-2 linear code still leaves ~0.2 of it; an error below 0.05 (and below a quarter of
    the rank-2 error) means the autoencoder captured all three directions, noise augmentation on.
    """
    data = _low_rank_data()
    config = AutoencoderConfig(arch=arch, channels=(16, 32), hidden=(64,), latent_dim=16, steps=300, batch_size=32,
                               lr=3e-3)
    untrained = build_autoencoder(data.shape[1], config).eval()
    assert reconstruction_error(untrained, data) > 0.5  # the bound is not met by chance
    model, history = train_autoencoder(data, config, torch.Generator().manual_seed(1))
    error = reconstruction_error(model, data)
    rank2 = _best_linear_error(data, 2)
    assert rank2 > 0.1
    assert error < 0.05 and error < rank2 / 4, (error, rank2)
    assert not model.training
    assert len(history.loss) == 300 // history.every + (300 % history.every != 0)
    assert sum(history.loss[-10:]) / 10 < history.loss[0] / 5  # the training loss fell too


@pytest.mark.parametrize("arch", ["conv", "mlp"])
def test_training_is_reproducible_from_the_generator(arch):
    data = _low_rank_data(k=16, dim=30)
    config = AutoencoderConfig(arch=arch, channels=(8,), latent_dim=4, steps=5, batch_size=8)
    torch.manual_seed(0)
    a, ha = train_autoencoder(data, config, torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    b, hb = train_autoencoder(data, config, torch.Generator().manual_seed(3))
    assert ha.loss == hb.loss
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb), name


def test_centred_normalizer_removes_the_zoo_mean_and_scales_by_one_spread():
    g = torch.Generator().manual_seed(0)
    zoo = 3.0 + torch.randn(40, 7, generator=g, dtype=torch.float64) * torch.tensor([1e-3, 1, 2, 3, 4, 5, 6.0])
    layout = ParamLayout.from_named_shapes([("w", (5,)), ("b", (2,))])
    norm = Normalizer.fit(zoo, layout, centre=True)
    z = norm.normalize(zoo)
    assert_close(z.mean(0), torch.zeros(7, dtype=torch.float64), atol=1e-12, rtol=0)
    assert_close(z.pow(2).mean(), torch.tensor(1.0, dtype=torch.float64))  # one spread: overall RMS 1
    ratio = z.std(0) / zoo.std(0)
    assert_close(ratio, ratio[0].expand(7))  # every coordinate divided by the same number
    assert_close(norm.denormalize(z), zoo, atol=1e-12, rtol=0)
    assert torch.equal(Normalizer.fit(zoo[:1], layout, centre=True).std, torch.ones(7, dtype=torch.float64))


def test_stored_configs_without_the_new_keys_keep_what_they_ran_with():
    stored = config_to_dict(RunConfig())
    for section, key in [("autoencoder", "arch"), ("autoencoder", "hidden"), ("autoencoder", "centre"),
                         ("diffusion", "denoiser"), ("diffusion", "whiten"), ("sample", "clip_x0")]:
        del stored[section][key]
    old = config_from_dict(stored)
    assert (old.autoencoder.arch, old.autoencoder.centre) == ("conv", False)
    assert (old.diffusion.denoiser, old.diffusion.whiten, old.sample.clip_x0) == ("conv", 0.0, True)
    assert old.autoencoder.latent_dim == RunConfig().autoencoder.latent_dim  # stored keys win
    assert config_from_dict(config_to_dict(RunConfig())) == RunConfig()


def test_an_unknown_autoencoder_is_refused_with_the_valid_names():
    with pytest.raises(ConfigError, match="autoencoders: mlp, conv"):
        with_overrides(RunConfig(), {"autoencoder.arch": "vae"})
