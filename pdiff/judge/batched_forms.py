"""One network stage run for many models at once, each model with its own target tensors.

`evaluate.py` splits a network at its first target stage; the rest (the suffix) runs per model.
`vmap(functional_call)` can run any stage that way, but the stages that end a classifier are
cheap elementwise and small-matmul work, where vmap's per-call overhead and its batch-norm rule
cost more than the arithmetic: on the default digits run, the suffix (eval BatchNorm, ReLU,
average pool, linear head) ran at about the speed of a plain per-model loop under vmap.

So each suffix stage gets the cheapest form that computes the same thing:
- no target tensors inside: the stage runs once on all models' activations merged into one batch;
- eval-mode BatchNorm: a per-model scale and shift, `x * scale + shift` (what PyTorch's CPU kernel
  computes), written in one broadcast pass;
- Linear: a batched matrix product;
- ReLU right after one of those: in place, on activations only this pass holds;
- a convolution on a CPU: it and every stage after it run one model at a time. oneDNN runs each
  model's own convolution several times faster than the one grouped convolution vmap turns them
  into (benchmarks/bench_evaluate.py with the whole-network target), and between convolutions its
  batch norm beats a broadcast over NCHW activations. On a GPU vmap's grouped form wins;
- anything else: `vmap(functional_call)` of that stage alone.

Activations are (S, ...) while every model still shares them, then (M, S, ...) per model.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, vmap

Tensors = dict[str, torch.Tensor]

SHARED, BATCHNORM, LINEAR, RELU, PER_MODEL, VMAP = "shared", "batchnorm", "linear", "relu", "per-model", "vmap"


@dataclass(frozen=True)
class StagePlan:
    """How one stage runs: its module, its name under the root model, and the kind of pass."""
    name: str
    module: nn.Module
    kind: str


def _holds_target(name: str, module: nn.Module, targets: set[str]) -> bool:
    prefix = f"{name}." if name else ""
    local = [prefix + n for n, _ in module.named_parameters()] + [prefix + n for n, _ in module.named_buffers()]
    return any(n in targets for n in local)


def _kind(name: str, module: nn.Module, targets: set[str], per_model_convs: bool) -> str:
    if not _holds_target(name, module, targets):
        return SHARED
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not module.training \
            and module.running_mean is not None and module.running_var is not None:
        return BATCHNORM
    if type(module) is nn.Linear:
        return LINEAR
    if per_model_convs and isinstance(module, nn.modules.conv._ConvNd):
        return PER_MODEL
    return VMAP


def plan_stages(named_stages: list[tuple[str, nn.Module]], targets: list[str],
                per_model_convs: bool = False) -> list[StagePlan]:
    """The pass kind of every stage; a ReLU right after a batched stage becomes an in-place one.

    `per_model_convs`: run convolutions holding targets one model at a time (faster on a CPU).
    """
    target_set = set(targets)
    plans: list[StagePlan] = []
    for name, module in named_stages:
        kind = _kind(name, module, target_set, per_model_convs)
        if kind == SHARED and type(module) is nn.ReLU and plans and plans[-1].kind != SHARED:
            kind = RELU
        plans.append(StagePlan(name, module, kind))
    return plans


def all_direct(plans: list[StagePlan]) -> bool:
    """Whether every stage runs shared or in a direct batched form (no vmap, no per-model pass):
    only then do channels-last activations pay off, convolutions want NCHW."""
    return not any(p.kind in (VMAP, PER_MODEL) for p in plans)


def _stage_tensors(plan: StagePlan, per_model: Tensors, fixed: Tensors) -> tuple[Tensors, Tensors]:
    """(per-model, fixed) tensors of one stage, keyed by the stage's own parameter names."""
    prefix = f"{plan.name}." if plan.name else ""
    own = lambda d: {k[len(prefix):]: v for k, v in d.items() if k.startswith(prefix)}
    return own(per_model), own(fixed)


def _per_channel(values: torch.Tensor, batched: bool, spatial_dims: int) -> torch.Tensor:
    """(M, C) or (C,) -> broadcastable against (M, S, C, *spatial)."""
    shape = (values.shape[0] if batched else 1, 1, values.shape[-1]) + (1,) * spatial_dims
    return values.reshape(shape)


def _batchnorm(module: nn.modules.batchnorm._BatchNorm, per_model: Tensors, fixed: Tensors,
               x: torch.Tensor, x_batched: bool) -> torch.Tensor:
    """Eval BatchNorm: y = x * a + b with a = weight / sqrt(var + eps), b = bias - mean * a."""
    get = lambda n: per_model.get(n, fixed.get(n))
    mean, var = get("running_mean"), get("running_var")
    weight = get("weight") if module.affine else torch.ones_like(var)
    bias = get("bias") if module.affine else torch.zeros_like(mean)
    scale = weight / torch.sqrt(var + module.eps)
    shift = bias - mean * scale
    spatial = x.dim() - (3 if x_batched else 2)
    batched = lambda n: n in per_model
    if not x_batched:
        x = x[None]
    a = _per_channel(scale, batched("weight") or batched("running_var"), spatial)
    b = _per_channel(shift, any(batched(n) for n in ("weight", "bias", "running_mean", "running_var")), spatial)
    return torch.addcmul(b, x, a)  # (M, S, C, *spatial)


def _linear(per_model: Tensors, fixed: Tensors, x: torch.Tensor, x_batched: bool) -> torch.Tensor:
    """y = x W^T + b, with W and b per model or shared; x (S, ..., in) or (M, S, ..., in)."""
    weight = per_model.get("weight", fixed.get("weight"))
    bias = per_model.get("bias", fixed.get("bias"))
    if weight.dim() == 3:  # (M, out, in), lined up with x's model dimension for matmul's broadcasting
        ones = (1,) * (x.dim() - 2 - int(x_batched))
        y = torch.matmul(x, weight.transpose(-1, -2).reshape(weight.shape[:1] + ones + weight.shape[2:0:-1]))
    else:
        y = nn.functional.linear(x, weight)
    if bias is None:
        return y
    if bias.dim() == 2:  # (M, out): broadcast over every dimension between the model and the features
        sample_dims = y.dim() - int(x_batched or weight.dim() == 3)  # y's dimensions without the model's
        bias = bias.reshape(bias.shape[:1] + (1,) * (sample_dims - 1) + bias.shape[1:])
    return y + bias


def _vmapped(module: nn.Module, per_model: Tensors, fixed: Tensors, x: torch.Tensor, x_batched: bool) -> torch.Tensor:
    def one(tensors: Tensors, inputs: torch.Tensor) -> torch.Tensor:
        return functional_call(module, fixed | tensors, (inputs,))

    return vmap(one, in_dims=(0, 0 if x_batched else None))(per_model, x)


def _one_model_at_a_time(plans: list[StagePlan], per_model: Tensors, fixed: Tensors, x: torch.Tensor,
                         x_batched: bool) -> torch.Tensor:
    """The remaining stages for each model in turn, each stage through PyTorch's own kernels."""
    tensors = [_stage_tensors(plan, per_model, fixed) for plan in plans]  # split by stage once, not per model
    outputs = []
    for i in range(len(next(iter(per_model.values())))):
        y = x[i] if x_batched else x
        for plan, (own, shared) in zip(plans, tensors):
            y = functional_call(plan.module, shared | {k: v[i] for k, v in own.items()}, (y,))
        outputs.append(y)
    return torch.stack(outputs)


def _merged(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A stage with only shared tensors, run once on all models' activations as one batch."""
    m, s = x.shape[:2]
    return module(x.flatten(0, 1)).unflatten(0, (m, s))


def run_stages(plans: list[StagePlan], per_model: Tensors, fixed: Tensors, x: torch.Tensor) -> torch.Tensor:
    """(S, ...) shared activations -> (M, S, ...) outputs, M = the models in `per_model`.

    `per_model` holds (M, ...) target tensors and `fixed` the rest, both under the root model's
    parameter names.
    """
    batched = False
    for index, plan in enumerate(plans):
        if plan.kind == PER_MODEL:
            return _one_model_at_a_time(plans[index:], per_model, fixed, x, batched)
        if plan.kind == SHARED:
            x = _merged(plan.module, x) if batched else plan.module(x)
            continue
        own, shared = _stage_tensors(plan, per_model, fixed)
        if plan.kind == RELU:
            x = x.relu_()
        elif plan.kind == BATCHNORM:
            x = _batchnorm(plan.module, own, shared, x, batched)
        elif plan.kind == LINEAR:
            x = _linear(own, shared, x, batched)
        else:
            x = _vmapped(plan.module, own, shared, x, batched)
        batched = batched or plan.kind != RELU
    if not batched:
        raise ValueError("no suffix stage holds a target tensor; split the network with evaluate.split_shared_prefix")
    return x

