"""Larger classifiers for real datasets: ResNet-18, a small ViT and ConvNeXt-T, in plain torch.

Each is an `nn.Sequential` of named stages, so the evaluator can run the stages before the first
target stage once and only the rest per generated model. Parameter names follow the reference
implementations (torchvision's ResNet, the original ConvNeXt), so e.g. the paper's target
`layer4.1.bn1.*,layer4.1.bn2.*` works unchanged and a torchvision ResNet-18 state dict loads
into `resnet18-imagenet` with `strict=True`.

They are named in `core.registry` as `resnet18`, `resnet18-imagenet`, `vit-small`, `convnext-tiny`.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------- ResNet-18


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock: two 3x3 convs with BN, identity or 1x1-conv shortcut.

    The residual sum is out-of-place so the block also runs under `torch.func.vmap`, where the
    shortcut may be shared (unbatched) while the block's parameters are batched.
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


def _res_layer(inplanes: int, planes: int, stride: int, blocks: int = 2) -> nn.Sequential:
    return nn.Sequential(BasicBlock(inplanes, planes, stride),
                         *[BasicBlock(planes, planes) for _ in range(blocks - 1)])


def resnet18(input_shape: tuple[int, ...], num_classes: int, imagenet_stem: bool = False) -> nn.Sequential:
    """ResNet-18 with torchvision's parameter names (11.2M parameters for CIFAR-10).

    The CIFAR stem (3x3 conv, stride 1, no max-pool) keeps 32 px inputs at full resolution in
    layer1, as in the p-diff paper; `imagenet_stem` gives torchvision's 7x7/2 conv + max-pool.
    """
    in_ch = input_shape[0]
    if imagenet_stem:
        stem = [("conv1", nn.Conv2d(in_ch, 64, 7, stride=2, padding=3, bias=False)),
                ("bn1", nn.BatchNorm2d(64)), ("relu", nn.ReLU(inplace=True)),
                ("maxpool", nn.MaxPool2d(3, stride=2, padding=1))]
    else:
        stem = [("conv1", nn.Conv2d(in_ch, 64, 3, stride=1, padding=1, bias=False)),
                ("bn1", nn.BatchNorm2d(64)), ("relu", nn.ReLU(inplace=True))]
    model = nn.Sequential(OrderedDict(stem + [
        ("layer1", _res_layer(64, 64, 1)),
        ("layer2", _res_layer(64, 128, 2)),
        ("layer3", _res_layer(128, 256, 2)),
        ("layer4", _res_layer(256, 512, 2)),
        ("avgpool", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(512, num_classes)),
    ]))
    for m in model.modules():  # torchvision's initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def resnet18_imagenet(input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """ResNet-18 exactly as torchvision builds it (for 224 px inputs and pretrained state dicts)."""
    return resnet18(input_shape, num_classes, imagenet_stem=True)


# --------------------------------------------------------------------------- ViT


@dataclass(frozen=True)
class ViTSize:
    patch: int
    dim: int
    depth: int
    heads: int
    mlp_ratio: int = 2


def vit_size(input_shape: tuple[int, ...]) -> ViTSize:
    """Patch size and width from the image side: about 4x4 to 14x14 tokens, small enough for CPU.

    8 px digits -> patch 2 (16 tokens); 28-64 px -> patch 4; 96 px -> patch 8; 224 px -> patch 16.
    """
    side = min(input_shape[1:])
    if side <= 16:
        return ViTSize(patch=2, dim=64, depth=4, heads=4)
    if side <= 64:
        return ViTSize(patch=4, dim=128, depth=6, heads=4)
    return ViTSize(patch=8 if side <= 128 else 16, dim=192, depth=6, heads=6)


class PatchEmbed(nn.Module):
    """(B, C, H, W) -> (B, 1 + N, D): patchify with a strided conv, prepend the class token, add positions."""

    def __init__(self, in_ch: int, dim: int, patch: int, num_patches: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_ch, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + num_patches, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x).flatten(2).transpose(1, 2)  # (B, N, D)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, D)
        return torch.cat([cls, x], dim=1) + self.pos_embed


class Attention(nn.Module):
    """Multi-head self-attention written with plain matmuls.

    Neither `nn.MultiheadAttention` (its eval fast path) nor `F.scaled_dot_product_attention`
    (on CPU) has a vmap batching rule in torch 2.13, so evaluating stacked parameter sets with
    `torch.func.vmap` would fall back to a slow per-model loop. Token counts here are small
    (at most 197), so the explicit (N, N) attention matrix is cheap.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, N, d_head)
        attn = (q @ k.transpose(-2, -1) * self.scale).softmax(dim=-1)  # (B, heads, N, N)
        out = attn @ v  # (B, heads, N, d_head)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(OrderedDict(fc1=nn.Linear(dim, mlp_ratio * dim), act=nn.GELU(),
                                             fc2=nn.Linear(mlp_ratio * dim, dim)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ClassToken(nn.Module):
    """(B, 1 + N, D) -> (B, D): the class token's final state."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


def vit_small(input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """A small ViT sized by `vit_size`; blocks are top-level stages (`block0`, `block1`, ...)."""
    size = vit_size(input_shape)
    in_ch, h, w = input_shape
    num_patches = (h // size.patch) * (w // size.patch)
    stages: list[tuple[str, nn.Module]] = [("patch_embed", PatchEmbed(in_ch, size.dim, size.patch, num_patches))]
    stages += [(f"block{i}", EncoderBlock(size.dim, size.heads, size.mlp_ratio)) for i in range(size.depth)]
    stages += [("norm", nn.LayerNorm(size.dim)), ("pool", ClassToken()), ("head", nn.Linear(size.dim, num_classes))]
    model = nn.Sequential(OrderedDict(stages))
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
    return model


# --------------------------------------------------------------------------- ConvNeXt


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) tensor.

    A subclass of `nn.LayerNorm` (not a new module type) so `last-norm:N` target selection,
    which looks for norm layers by type, finds it.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7 conv, LayerNorm, 4x inverted-bottleneck MLP, layer scale (stochastic depth omitted)."""

    def __init__(self, dim: int, layer_scale: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)  # (B, H, W, C): the MLP acts per pixel
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


class GlobalAvgPool(nn.Module):
    """(B, C, H, W) -> (B, C) by a plain mean.

    Used instead of `nn.AdaptiveAvgPool2d`, which on the channels-last strides a ConvNeXt block
    leaves behind hits an op without a vmap batching rule (a slow per-model fallback).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1))


def convnext_stem_patch(side: int) -> int:
    """4x4 patchify as in the paper for >= 64 px; 2x2 at 32 px and 1x1 below keep enough resolution
    for the three 2x downsamplings that follow."""
    return 4 if side >= 64 else 2 if side >= 32 else 1


def convnext_tiny(input_shape: tuple[int, ...], num_classes: int,
                  depths: tuple[int, ...] = (3, 3, 9, 3), dims: tuple[int, ...] = (96, 192, 384, 768)) -> nn.Sequential:
    """ConvNeXt-T (28M parameters with 1000 classes); stages `stem, stage1, down2, stage2, ..., norm, head`."""
    patch = convnext_stem_patch(min(input_shape[1:]))
    stages: list[tuple[str, nn.Module]] = [("stem", nn.Sequential(OrderedDict(
        conv=nn.Conv2d(input_shape[0], dims[0], patch, stride=patch), norm=LayerNorm2d(dims[0], eps=1e-6))))]
    for i, (depth, dim) in enumerate(zip(depths, dims)):
        if i:
            stages.append((f"down{i + 1}", nn.Sequential(OrderedDict(
                norm=LayerNorm2d(dims[i - 1], eps=1e-6), conv=nn.Conv2d(dims[i - 1], dim, 2, stride=2)))))
        stages.append((f"stage{i + 1}", nn.Sequential(*[ConvNeXtBlock(dim) for _ in range(depth)])))
    stages += [("pool", GlobalAvgPool()), ("norm", nn.LayerNorm(dims[-1], eps=1e-6)), ("head", nn.Linear(dims[-1], num_classes))]
    model = nn.Sequential(OrderedDict(stages))
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
    return model
