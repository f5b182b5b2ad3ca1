"""Target selection, the flat-vector layout and the per-tensor normalizer: exact round trips."""
from __future__ import annotations

import json

import pytest
import torch
from torch.testing import assert_close

from pdiff.core.errors import ConfigError
from pdiff.generator.normalizer import Normalizer
from pdiff.zoo.classifiers import build_classifier
from pdiff.zoo.params import ParamLayout, layout_of, read_vector, select_target, write_vector


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    return build_classifier("cnn", (1, 8, 8), 10)


def test_select_target_patterns_in_model_order(cnn):
    assert select_target(cnn, "head.*") == ["head.weight", "head.bias"]
    assert select_target(cnn, "last-norm:1") == ["bn2.weight", "bn2.bias"]
    assert select_target(cnn, "last-norm:2") == ["bn1.weight", "bn1.bias", "bn2.weight", "bn2.bias"]
    # a union comes back in the model's parameter order, whatever the order of the selectors
    assert select_target(cnn, "head.*, last-norm:1") == ["bn2.weight", "bn2.bias", "head.weight", "head.bias"]
    assert select_target(cnn, "bn*.bias,conv1.weight") == ["conv1.weight", "bn1.bias", "bn2.bias"]
    assert select_target(cnn, "all") == [n for n, _ in cnn.named_parameters()]


def test_select_target_errors_are_clear(cnn):
    with pytest.raises(ConfigError, match=r"matches no parameter.*head\.weight"):
        select_target(cnn, "layer4.*")
    with pytest.raises(ConfigError, match="positive count"):
        select_target(cnn, "last-norm:0")
    with pytest.raises(ConfigError, match="positive count"):
        select_target(cnn, "last-norm:x")
    with pytest.raises(ConfigError, match="has 2"):
        select_target(cnn, "last-norm:3")
    with pytest.raises(ConfigError, match="selects no parameters"):
        select_target(cnn, " , ")


def test_default_target_is_394_floats_on_digits(cnn):
    layout = layout_of(cnn, select_target(cnn, "last-norm:1,head.*"))
    assert layout.dim == 32 + 32 + 32 * 10 + 10 == 394


def test_layout_offsets_are_contiguous():
    layout = ParamLayout.from_named_shapes([("a", (2, 3)), ("b", ()), ("c", (4,))])
    assert [(s.start, s.stop) for s in layout.segments] == [(0, 6), (6, 7), (7, 11)]
    assert layout.dim == 11 and layout.names == ["a", "b", "c"]
    assert ParamLayout(()).dim == 0


def test_flatten_unflatten_exact():
    g = torch.Generator().manual_seed(0)
    tensors = {"w": torch.randn(3, 4, generator=g), "b": torch.randn(3, generator=g), "s": torch.randn((), generator=g)}
    layout = ParamLayout.from_named_shapes([(k, tuple(v.shape)) for k, v in tensors.items()])
    flat = layout.flatten(tensors)
    assert flat.shape == (layout.dim,) == (16,)
    back = layout.unflatten(flat)
    assert back.keys() == tensors.keys()
    for k, v in tensors.items():
        assert torch.equal(back[k], v)
    assert torch.equal(layout.flatten(back), flat)
    # batched: (N, D) -> {name: (N, *shape)}, each row its own model
    batch = torch.randn(5, layout.dim, generator=g)
    parts = layout.unflatten(batch)
    assert parts["w"].shape == (5, 3, 4) and parts["s"].shape == (5,)
    for i in range(5):
        assert torch.equal(layout.flatten({k: v[i] for k, v in parts.items()}), batch[i])


def test_layout_json_round_trip(cnn):
    layout = layout_of(cnn, select_target(cnn, "all"))
    text = json.dumps(layout.to_json())
    assert ParamLayout.from_json(json.loads(text)) == layout


def test_read_write_vector_round_trip(cnn):
    layout = layout_of(cnn, select_target(cnn, "last-norm:1,head.*"))
    before = read_vector(cnn, layout)
    other = torch.randn(layout.dim, generator=torch.Generator().manual_seed(1))
    untouched = cnn.conv1.weight.detach().clone()
    write_vector(cnn, layout, other)
    assert torch.equal(read_vector(cnn, layout), other)
    assert torch.equal(cnn.head.bias.detach(), other[-10:])
    assert torch.equal(cnn.conv1.weight.detach(), untouched)
    assert not torch.equal(before, other)
    # read_vector copies: later writes do not change an earlier read
    snapshot = read_vector(cnn, layout)
    write_vector(cnn, layout, before)
    assert torch.equal(snapshot, other)


def test_normalizer_is_per_tensor_z_score_and_inverts():
    g = torch.Generator().manual_seed(2)
    layout = ParamLayout.from_named_shapes([("a", (6,)), ("b", (2, 2))])
    zoo = torch.cat([3.0 + 0.5 * torch.randn(30, 6, generator=g), -1.0 + 0.01 * torch.randn(30, 4, generator=g)], 1)
    norm = Normalizer.fit(zoo, layout)
    z = norm.normalize(zoo)
    assert z.dtype == zoo.dtype
    for s in layout.segments:  # each tensor: mean 0, std 1 over all checkpoints and entries
        block = z[:, s.start:s.stop].double()
        assert block.mean().item() == pytest.approx(0.0, abs=1e-6)
        assert block.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    # one scalar mean/std per tensor
    assert torch.unique(norm.mean[:6]).numel() == 1 and torch.unique(norm.std[6:]).numel() == 1
    assert_close(norm.denormalize(z), zoo, atol=1e-6, rtol=1e-6)
    assert_close(norm.normalize(norm.denormalize(z)), z, atol=1e-6, rtol=1e-6)
    restored = Normalizer.from_state({k: v.float() for k, v in norm.state().items()})
    assert_close(restored.normalize(zoo), z, atol=1e-5, rtol=1e-5)


def test_normalizer_constant_tensor_is_only_centred():
    layout = ParamLayout.from_named_shapes([("const", (3,)), ("var", (2,))])
    zoo = torch.cat([torch.full((10, 3), 0.25), torch.randn(10, 2, generator=torch.Generator().manual_seed(3))], 1)
    norm = Normalizer.fit(zoo, layout)
    assert torch.equal(norm.std[:3], torch.ones(3, dtype=torch.float64))
    z = norm.normalize(zoo)
    assert torch.isfinite(z).all()
    assert torch.equal(z[:, :3], torch.zeros(10, 3))
    assert torch.equal(norm.denormalize(z)[:, :3], zoo[:, :3])
    # a one-entry tensor from a one-checkpoint zoo is constant too
    single = Normalizer.fit(torch.tensor([[5.0, 1.0]]), ParamLayout.from_named_shapes([("x", (1,)), ("y", (1,))]))
    assert torch.equal(single.normalize(torch.tensor([[5.0, 1.0]])), torch.zeros(1, 2))
