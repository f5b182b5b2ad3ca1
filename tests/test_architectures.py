"""Architectures: shapes, parameter counts, torchvision-compatible names, vmap-friendliness."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.func import functional_call, vmap

from pdiff.zoo import architectures
from pdiff.zoo.classifiers import build_classifier
from pdiff.zoo.params import NORM_TYPES, layout_of, select_target

# torchvision.models.resnet18() state dict, written out from its definition (BasicBlock, layers
# [2, 2, 2, 2], widths 64-512, a 1x1-conv + BN shortcut in the first block of layers 2-4,
# fc 512 -> 1000). One line per conv / BN / linear; a BN line expands to its five entries.
TORCHVISION_RESNET18 = """
conv1 conv 64 3 7 7
bn1 bn 64
layer1.0.conv1 conv 64 64 3 3
layer1.0.bn1 bn 64
layer1.0.conv2 conv 64 64 3 3
layer1.0.bn2 bn 64
layer1.1.conv1 conv 64 64 3 3
layer1.1.bn1 bn 64
layer1.1.conv2 conv 64 64 3 3
layer1.1.bn2 bn 64
layer2.0.conv1 conv 128 64 3 3
layer2.0.bn1 bn 128
layer2.0.conv2 conv 128 128 3 3
layer2.0.bn2 bn 128
layer2.0.downsample.0 conv 128 64 1 1
layer2.0.downsample.1 bn 128
layer2.1.conv1 conv 128 128 3 3
layer2.1.bn1 bn 128
layer2.1.conv2 conv 128 128 3 3
layer2.1.bn2 bn 128
layer3.0.conv1 conv 256 128 3 3
layer3.0.bn1 bn 256
layer3.0.conv2 conv 256 256 3 3
layer3.0.bn2 bn 256
layer3.0.downsample.0 conv 256 128 1 1
layer3.0.downsample.1 bn 256
layer3.1.conv1 conv 256 256 3 3
layer3.1.bn1 bn 256
layer3.1.conv2 conv 256 256 3 3
layer3.1.bn2 bn 256
layer4.0.conv1 conv 512 256 3 3
layer4.0.bn1 bn 512
layer4.0.conv2 conv 512 512 3 3
layer4.0.bn2 bn 512
layer4.0.downsample.0 conv 512 256 1 1
layer4.0.downsample.1 bn 512
layer4.1.conv1 conv 512 512 3 3
layer4.1.bn1 bn 512
layer4.1.conv2 conv 512 512 3 3
layer4.1.bn2 bn 512
fc linear 1000 512
"""


def torchvision_resnet18_keys() -> list[tuple[str, tuple[int, ...]]]:
    entries = []
    for line in TORCHVISION_RESNET18.strip().splitlines():
        name, kind, *dims = line.split()
        shape = tuple(int(d) for d in dims)
        if kind == "conv":
            entries.append((f"{name}.weight", shape))
        elif kind == "bn":
            entries += [(f"{name}.{p}", shape) for p in ("weight", "bias", "running_mean", "running_var")]
            entries.append((f"{name}.num_batches_tracked", ()))
        else:
            entries += [(f"{name}.weight", shape), (f"{name}.bias", shape[:1])]
    return entries


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _vmap_equals_loop(model: nn.Module, names: list[str], x: torch.Tensor, copies: int = 3) -> None:
    """Evaluating stacked parameter copies with vmap(functional_call) matches a Python loop,
    and runs without any vmap fallback warning (which would mean a slow per-model loop)."""
    model.eval()
    params = dict(model.named_parameters())
    gen = torch.Generator().manual_seed(0)
    stacked = {n: torch.stack([params[n].detach() + 0.05 * i * torch.randn(params[n].shape, generator=gen)
                               for i in range(copies)]) for n in names}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error")
        batched = vmap(lambda p: functional_call(model, p, (x,)), randomness="error")(stacked)
        loop = torch.stack([functional_call(model, {n: v[i] for n, v in stacked.items()}, (x,))
                            for i in range(copies)])
    assert batched.shape == (copies, x.shape[0], loop.shape[-1])
    torch.testing.assert_close(batched, loop, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(loop[0], loop[-1])  # the copies really differ


# --------------------------------------------------------------------------- ResNet-18

def test_resnet18_matches_torchvision_state_dict() -> None:
    model = build_classifier("resnet18-imagenet", (3, 224, 224), 1000)
    expected = torchvision_resnet18_keys()
    assert len(expected) == 122
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == expected
    state = {k: torch.randn(s) if s else torch.tensor(7) for k, s in expected}
    model.load_state_dict(state, strict=True)
    torch.testing.assert_close(model.layer4[1].bn2.weight.detach(), state["layer4.1.bn2.weight"])
    assert model.layer4[1].bn2.num_batches_tracked.item() == 7


def test_resnet18_parameter_counts() -> None:
    assert _count(build_classifier("resnet18", (3, 32, 32), 10)) == 11_173_962
    assert _count(build_classifier("resnet18-imagenet", (3, 224, 224), 1000)) == 11_689_512


def test_resnet18_stems() -> None:
    cifar = build_classifier("resnet18", (3, 32, 32), 10)
    assert isinstance(cifar, nn.Sequential) and "maxpool" not in dict(cifar.named_children())
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1)
    imagenet = build_classifier("resnet18-imagenet", (3, 224, 224), 1000)
    assert list(dict(imagenet.named_children()))[:4] == ["conv1", "bn1", "relu", "maxpool"]
    assert imagenet.conv1.kernel_size == (7, 7) and imagenet.conv1.stride == (2, 2)


@pytest.mark.parametrize("arch,shape,classes", [("resnet18", (3, 32, 32), 10), ("resnet18", (1, 28, 28), 10),
                                                ("resnet18-imagenet", (3, 64, 64), 1000)])
def test_resnet18_forward_shapes(arch: str, shape: tuple[int, ...], classes: int) -> None:
    model = build_classifier(arch, shape, classes).eval()
    with torch.no_grad():
        assert model(torch.randn(2, *shape)).shape == (2, classes)


def test_resnet18_last_two_norms_are_the_paper_target() -> None:
    model = build_classifier("resnet18", (3, 32, 32), 10)
    target = select_target(model, "last-norm:2")
    assert target == ["layer4.1.bn1.weight", "layer4.1.bn1.bias", "layer4.1.bn2.weight", "layer4.1.bn2.bias"]
    assert layout_of(model, target).dim == 2048


def test_resnet18_vmap_over_target() -> None:
    model = build_classifier("resnet18", (3, 32, 32), 10)
    _vmap_equals_loop(model, select_target(model, "last-norm:2,fc.*"), torch.randn(2, 3, 32, 32))


# --------------------------------------------------------------------------- ViT

@pytest.mark.parametrize("side,patch", [(8, 2), (28, 4), (32, 4), (96, 8), (224, 16)])
def test_vit_size_adapts_to_input(side: int, patch: int) -> None:
    size = architectures.vit_size((3, side, side))
    assert size.patch == patch and 64 <= size.dim <= 192 and 4 <= size.depth <= 6
    assert size.dim % size.heads == 0


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_vit_forward_shapes(shape: tuple[int, ...]) -> None:
    model = build_classifier("vit-small", shape, 10).eval()
    assert isinstance(model, nn.Sequential)
    names = list(dict(model.named_children()))
    assert names[0] == "patch_embed" and names[-3:] == ["norm", "pool", "head"]
    with torch.no_grad():
        assert model(torch.randn(2, *shape)).shape == (2, 10)


def test_vit_trains() -> None:
    """A few SGD steps on a fixed batch lower the loss (gradients reach every parameter)."""
    torch.manual_seed(0)
    model = build_classifier("vit-small", (1, 8, 8), 10).train()
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for _ in range(3):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(p.grad is not None for p in model.parameters())
    assert losses[-1] < losses[0]


def test_vit_vmap_over_all_parameters_equals_loop() -> None:
    model = build_classifier("vit-small", (1, 8, 8), 10)
    _vmap_equals_loop(model, [n for n, _ in model.named_parameters()], torch.randn(4, 1, 8, 8))


def test_vit_last_norm_is_final_layernorm() -> None:
    model = build_classifier("vit-small", (3, 32, 32), 10)
    assert select_target(model, "last-norm:1") == ["norm.weight", "norm.bias"]


# --------------------------------------------------------------------------- ConvNeXt

def test_layernorm2d_is_a_layernorm_over_channels() -> None:
    norm = architectures.LayerNorm2d(5, eps=1e-6)
    assert isinstance(norm, nn.LayerNorm) and isinstance(norm, NORM_TYPES)
    with torch.no_grad():
        norm.weight.uniform_()
        norm.bias.uniform_()
    x = torch.randn(2, 5, 3, 4)
    reference = nn.functional.layer_norm(x.permute(0, 2, 3, 1), (5,), norm.weight, norm.bias, 1e-6)
    torch.testing.assert_close(norm(x), reference.permute(0, 3, 1, 2))


@pytest.mark.parametrize("side,patch", [(224, 4), (64, 4), (32, 2), (28, 1), (8, 1)])
def test_convnext_stem_adapts(side: int, patch: int) -> None:
    assert architectures.convnext_stem_patch(side) == patch


def test_convnext_tiny() -> None:
    model = build_classifier("convnext-tiny", (3, 32, 32), 10).eval()
    assert list(dict(model.named_children())) == [
        "stem", "stage1", "down2", "stage2", "down3", "stage3", "down4", "stage4", "pool", "norm", "head"]
    assert [len(model.get_submodule(f"stage{i}")) for i in range(1, 5)] == [3, 3, 9, 3]
    assert model.stem.conv.stride == (2, 2)
    # torchvision's ConvNeXt-T has 28,589,128 parameters: 4x4 stem on 3 channels, 1000 classes.
    # Here the stem is 2x2 (32 px input) and the head has 10 classes.
    assert _count(model) == 28_589_128 - 96 * 3 * (4 * 4 - 2 * 2) - 768 * 990 - 990
    assert torch.all(model.stage4[2].gamma == 1e-6)
    assert select_target(model, "last-norm:2") == ["stage4.2.norm.weight", "stage4.2.norm.bias",
                                                   "norm.weight", "norm.bias"]
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
