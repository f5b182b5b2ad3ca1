"""Target parameters: which tensors are generated and how they flatten into one vector.

A `ParamLayout` is the contract between a classifier and a flat parameter vector: the names,
shapes and offsets of the target tensors, in the model's own parameter order. It is stored in
the run as JSON so a vector can be turned back into a state dict without the code that made it.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import torch
from torch import nn

from ..core.errors import ConfigError

NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


@dataclass(frozen=True)
class Segment:
    name: str
    shape: tuple[int, ...]
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class ParamLayout:
    segments: tuple[Segment, ...]

    @property
    def dim(self) -> int:
        return self.segments[-1].stop if self.segments else 0

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.segments]

    @classmethod
    def from_named_shapes(cls, named: list[tuple[str, tuple[int, ...]]]) -> ParamLayout:
        segments, offset = [], 0
        for name, shape in named:
            size = 1
            for s in shape:
                size *= s
            segments.append(Segment(name, tuple(shape), offset, offset + size))
            offset += size
        return cls(tuple(segments))

    def to_json(self) -> list[dict]:
        return [{"name": s.name, "shape": list(s.shape)} for s in self.segments]

    @classmethod
    def from_json(cls, data: list[dict]) -> ParamLayout:
        return cls.from_named_shapes([(d["name"], tuple(d["shape"])) for d in data])

    def flatten(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Concatenate the target tensors into one (D,) vector, in layout order."""
        return torch.cat([tensors[s.name].reshape(-1) for s in self.segments])

    def unflatten(self, vectors: torch.Tensor) -> dict[str, torch.Tensor]:
        """(..., D) -> {name: (..., *shape)}; views into `vectors`, no copy."""
        lead = vectors.shape[:-1]
        return {s.name: vectors[..., s.start:s.stop].reshape((*lead, *s.shape)) for s in self.segments}


def select_target(model: nn.Module, spec: str) -> list[str]:
    """Names of the target parameters, in the model's parameter order.

    `spec` is a comma-separated union of selectors:
      - `all`: every parameter (whole-network generation);
      - `last-norm:N`: weight and bias of the last N normalization layers (the paper's setting);
      - any other text: a shell-style pattern over parameter names, e.g. `layer4.1.bn*` or `head.*`.
    """
    names = [n for n, _ in model.named_parameters()]
    chosen: set[str] = set()
    for selector in (s.strip() for s in spec.split(",")):
        if not selector:
            continue
        if selector == "all":
            chosen.update(names)
        elif selector.startswith("last-norm:"):
            chosen.update(_last_norm_params(model, selector))
        else:
            hits = fnmatch.filter(names, selector)
            if not hits:
                raise ConfigError(f"target pattern {selector!r} matches no parameter; "
                                  f"parameters are: {', '.join(names)}")
            chosen.update(hits)
    if not chosen:
        raise ConfigError("collect.target selects no parameters; use 'all', 'last-norm:N' or name patterns")
    return [n for n in names if n in chosen]


def select_state_target(model: nn.Module, spec: str) -> list[str]:
    """State-dict keys of an imported zoo's target, in state-dict order.

    Independently trained checkpoints share nothing, BatchNorm running statistics included, so
    `all` takes every floating-point tensor of the state dict (a BatchNorm count is an integer and
    plays no part in evaluation). Other selectors are `select_target`'s, and take the floating-point
    buffers of each layer they select a parameter of along: a layer's statistics move with it.
    """
    state = model.state_dict()
    floating = [k for k, v in state.items() if v.is_floating_point()]
    if any(s.strip() == "all" for s in spec.split(",")):
        return floating
    params = set(select_target(model, spec))
    owners = {name.rpartition(".")[0] for name in params}
    buffers = {name for name, _ in model.named_buffers() if name.rpartition(".")[0] in owners}
    return [k for k in floating if k in params or k in buffers]


def layout_of_state(state: dict[str, torch.Tensor], names: list[str]) -> ParamLayout:
    """The layout of `names` (state-dict keys, parameters or buffers) with their shapes in `state`."""
    return ParamLayout.from_named_shapes([(n, tuple(state[n].shape)) for n in names])


def clamp_variances(vectors: torch.Tensor, layout: ParamLayout) -> torch.Tensor:
    """(N, D) vectors with every BatchNorm `running_var` coordinate raised to at least 0.

    Why: a whole-state target generates running statistics too, and a generated variance can
    fall below zero, which no BatchNorm layer can hold (its square root is NaN). Such a model is
    evaluated, and exported, as if that variance were 0. Other vectors are returned unchanged."""
    segments = [s for s in layout.segments if s.name.endswith("running_var")]
    if not segments:
        return vectors
    out = vectors.clone()
    for s in segments:
        out[..., s.start:s.stop].clamp_(min=0)
    return out


def _last_norm_params(model: nn.Module, selector: str) -> list[str]:
    count = selector.partition(":")[2]
    if not count.isdigit() or int(count) < 1:
        raise ConfigError(f"target selector {selector!r} needs a positive count, e.g. last-norm:2")
    norms = [name for name, m in model.named_modules()
             if isinstance(m, NORM_TYPES) and any(True for _ in m.parameters(recurse=False))]
    if len(norms) < int(count):
        raise ConfigError(f"{selector!r} asks for {count} norm layers but the model has {len(norms)}")
    picked = norms[-int(count):]
    return [f"{m}.{p}" for m in picked for p, _ in model.get_submodule(m).named_parameters(recurse=False)]


def layout_of(model: nn.Module, target: list[str]) -> ParamLayout:
    params = dict(model.named_parameters())
    return ParamLayout.from_named_shapes([(n, tuple(params[n].shape)) for n in target])


def read_vector(model: nn.Module, layout: ParamLayout) -> torch.Tensor:
    params = dict(model.named_parameters())
    return layout.flatten({n: params[n].detach() for n in layout.names}).clone()


@torch.no_grad()
def write_vector(model: nn.Module, layout: ParamLayout, vector: torch.Tensor) -> None:
    """Copy a (D,) vector into the model's target parameters in place."""
    params = dict(model.named_parameters())
    for name, value in layout.unflatten(vector).items():
        params[name].copy_(value)
