"""Each batched stage form computes what the stage computes, model by model."""
from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.testing import assert_close

from pdiff.judge.batched_forms import BATCHNORM, LINEAR, PER_MODEL, RELU, SHARED, VMAP, plan_stages, run_stages
from pdiff.judge.evaluate import leaf_stages
from pdiff.zoo.classifiers import build_classifier


def _per_model_reference(net: nn.Sequential, stacked: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The same network run once per model, with that model's tensors swapped in."""
    m = len(next(iter(stacked.values())))
    return torch.stack([functional_call(net, {n: v[i] for n, v in stacked.items()}, (x,)) for i in range(m)])


def _stacked(net: nn.Module, names: list[str], m: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """m different copies of the named tensors (parameters or buffers), around their values."""
    g = torch.Generator().manual_seed(seed)
    state = dict(net.named_parameters()) | dict(net.named_buffers())
    copies = {}
    for name in names:
        base = state[name].detach()
        noise = torch.randn((m, *base.shape), generator=g)
        copies[name] = (base + 0.3 * noise).abs() + 0.1 if "running_var" in name else base + 0.3 * noise
    return copies


def _run(net: nn.Sequential, names: list[str], x: torch.Tensor, m: int = 4, per_model_convs: bool = False):
    net.eval()
    plans = plan_stages(leaf_stages(net), names, per_model_convs)
    stacked = _stacked(net, names, m)
    state = dict(net.named_parameters()) | dict(net.named_buffers())
    fixed = {k: v.detach() for k, v in state.items() if k not in names}
    return plans, run_stages(plans, stacked, fixed, x), _per_model_reference(net, stacked, x)


def _trained_bn(bn: nn.Module, shape: tuple[int, ...]) -> nn.Module:
    with torch.no_grad():  # running statistics that are not 0 and 1
        bn.train()(torch.randn(shape) * 3 + 1)
    return bn.eval()


def test_the_digits_suffix_gets_direct_forms_and_matches_a_loop():
    cnn = build_classifier("cnn", (1, 8, 8), 10).eval()
    _trained_bn(cnn.bn2, (64, 32, 4, 4))
    suffix = nn.Sequential(OrderedDict(list(cnn.named_children())[4:]))  # bn2 .. head
    plans, batched, loop = _run(suffix, ["bn2.weight", "bn2.bias", "head.weight", "head.bias"],
                                torch.randn(6, 32, 4, 4))
    assert [p.kind for p in plans] == [BATCHNORM, RELU, SHARED, SHARED, LINEAR]
    assert batched.shape == (4, 6, 10)
    assert_close(batched, loop)
    assert not torch.allclose(loop[0], loop[1])  # the models really differ


@pytest.mark.parametrize("targets", [["0.weight"], ["0.bias"], ["0.running_mean", "0.running_var"],
                                     ["0.weight", "0.bias", "0.running_var"]])
def test_batchnorm2d_with_any_mix_of_per_model_and_shared_tensors(targets):
    net = nn.Sequential(_trained_bn(nn.BatchNorm2d(5), (32, 5, 3, 3)), nn.ReLU())
    plans, batched, loop = _run(net, targets, torch.randn(7, 5, 3, 3))
    assert plans[0].kind == BATCHNORM
    assert_close(batched, loop)


def test_batchnorm1d_without_affine_on_sequences_and_channels_last_input():
    net = nn.Sequential(nn.Linear(3, 4), _trained_bn(nn.BatchNorm1d(4, affine=False), (16, 4)))
    plans, batched, loop = _run(net, ["0.weight", "1.running_mean"], torch.randn(5, 3))
    assert [p.kind for p in plans] == [LINEAR, BATCHNORM]
    assert_close(batched, loop)
    seq = nn.Sequential(_trained_bn(nn.BatchNorm1d(4), (16, 4, 6)))
    plans, batched, loop = _run(seq, ["0.weight", "0.bias"], torch.randn(5, 4, 6))
    assert_close(batched, loop)
    net2d = nn.Sequential(_trained_bn(nn.BatchNorm2d(3), (8, 3, 4, 4)), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    x = torch.randn(5, 3, 4, 4).contiguous(memory_format=torch.channels_last)
    _, batched, loop = _run(net2d, ["0.weight"], x)
    assert_close(batched, loop)


def test_linear_on_extra_token_dimensions_with_shared_or_per_model_input():
    net = nn.Sequential(nn.Linear(3, 5), nn.GELU(), nn.Linear(5, 2))
    x = torch.randn(4, 6, 3)  # (samples, tokens, features)
    for targets in (["0.weight"], ["2.weight", "2.bias"], ["0.bias", "2.weight"], ["0.bias"]):
        _, batched, loop = _run(net, targets, x)
        assert batched.shape == (4, 4, 6, 2)
        assert_close(batched, loop)


def test_other_stages_run_through_vmap_and_shared_stages_once():
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.LayerNorm([3, 4, 4]),
                        nn.Flatten(), nn.Linear(48, 2))
    plans, batched, loop = _run(net, ["0.weight", "2.weight", "4.bias"], torch.randn(5, 2, 4, 4))
    assert [p.kind for p in plans] == [VMAP, RELU, VMAP, SHARED, LINEAR]
    assert_close(batched, loop, rtol=1e-4, atol=1e-5)


def test_from_a_per_model_convolution_on_every_stage_runs_one_model_at_a_time():
    net = nn.Sequential(nn.Linear(4, 16), nn.Unflatten(1, (1, 4, 4)), nn.Conv2d(1, 3, 3, padding=1),
                        _trained_bn(nn.BatchNorm2d(3), (8, 3, 4, 4)), nn.ReLU(), nn.Flatten(), nn.Linear(48, 2))
    plans, batched, loop = _run(net, ["0.bias", "2.weight", "3.weight", "6.weight"], torch.randn(5, 4),
                                per_model_convs=True)
    assert [p.kind for p in plans] == [LINEAR, SHARED, PER_MODEL, BATCHNORM, RELU, SHARED, LINEAR]
    assert_close(batched, loop)
    plans, batched, loop = _run(net, ["2.weight", "6.bias"], torch.randn(5, 4), per_model_convs=True)
    assert plans[2].kind == PER_MODEL
    assert_close(batched, loop)


def test_shared_input_is_never_written():
    net = nn.Sequential(_trained_bn(nn.BatchNorm2d(3), (8, 3, 2, 2)), nn.ReLU(inplace=True), nn.Flatten(),
                        nn.Linear(12, 2))
    x = torch.randn(4, 3, 2, 2)
    before = x.clone()
    _run(net, ["0.weight", "3.weight"], x)
    assert torch.equal(x, before)


def test_a_suffix_without_targets_is_refused():
    net = nn.Sequential(nn.ReLU())
    with pytest.raises(ValueError, match="no suffix stage holds a target"):
        run_stages(plan_stages(leaf_stages(net), []), {}, {}, torch.randn(2, 3))
