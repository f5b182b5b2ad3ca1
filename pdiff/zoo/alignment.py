"""Neuron alignment by weight matching (Git Re-Basin: Ainsworth, Hayase & Srinivasa, ICLR 2023).

Why: permuting a network's hidden units leaves its function unchanged but moves it far away in
parameter space, so two independently trained models look unrelated to an L2 metric (and to a
generator trained on both). Permuting each model's hidden units to best match one reference
model removes that symmetry before models are compared or pooled.

- `permutation_spec(model)` traces a chain of supported layers (nested `nn.Sequential` of
  Linear / Conv1d / Conv2d, BatchNorm, LayerNorm, elementwise activations, pooling, Dropout,
  Flatten) and records which axis of which state-dict tensor each permutation group acts on.
  Anything else (residual blocks, attention, ...) is refused with a one-line `ValueError`.
- `weight_matching` / `weight_matching_many`: the paper's coordinate descent (its Algorithm 1):
  one group at a time, in random order, solve the linear assignment problem
  max_P sum_l <W_l^ref, P W_l^other (other groups' permutations applied)> with scipy, until a
  full sweep changes nothing. Many models are matched in lock-step so the similarity matrices
  of all of them come from one batched product.
- `apply_permutation`: the permuted state. Values are only moved, never recomputed, so the
  function is preserved exactly (up to the order of float sums inside the layers).
- `permutable_groups` / `blocked_groups`: when only part of a network varies between models (a
  pdiff target such as the last norm layer and the head), a group may move only if every tensor
  touching it varies: permuting a group also permutes the frozen, shared rest otherwise.
- `align_to`, `aligned_distance`, `state_distance`: conveniences over the above.
- `align_runs`: flat vectors of several training runs, each run moved by one permutation (that of
  its last checkpoint), so a run's own trajectory is never torn apart.

Convention: a permutation `perm` of a group acts by indexing, permuted[..., i, ...] =
original[..., perm[i], ...], along every axis the group touches. If `other` is the reference
permuted by `pi`, matching `other` to the reference finds the inverse of `pi`.

Imports only the standard library, numpy, scipy and torch.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

__all__ = [
    "PermutationSpec", "TensorAxes", "align_runs", "align_to", "aligned_distance", "apply_permutation",
    "blocked_groups", "invert", "permutable_groups", "permutation_spec", "random_permutations", "run_representatives",
    "state_distance", "weight_matching", "weight_matching_many",
]

SUPPORTED = "alignment supports Linear, Conv1d/2d, BatchNorm, LayerNorm, activations, pooling and Flatten chains"

State = Mapping[str, torch.Tensor]
Perms = dict[str, torch.Tensor]
Axes = dict[str, tuple[tuple[int, ...], tuple[str | None, ...]]]  # a layer's local key -> (view, axes)


def _nn_types(*names: str) -> frozenset[type]:
    return frozenset(getattr(nn, name) for name in names if hasattr(nn, name))


# Exact types only: a subclass may override forward and mix units in ways the trace cannot see.
_ELEMENTWISE = _nn_types(
    "Identity", "Dropout", "Dropout1d", "Dropout2d", "AlphaDropout", "FeatureAlphaDropout",
    "ReLU", "ReLU6", "GELU", "SiLU", "Tanh", "LeakyReLU", "Sigmoid", "ELU", "SELU", "CELU", "Softplus", "Mish",
    "Hardtanh", "Hardswish", "Hardsigmoid", "Softsign", "Tanhshrink", "LogSigmoid", "Softshrink", "Hardshrink",
)
_POOLS = _nn_types("MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "LPPool1d", "LPPool2d",
                   "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d")
_SOFTMAX = _nn_types("Softmax", "LogSoftmax")  # mixes units: only after the head
_CONVS = _nn_types("Conv1d", "Conv2d")
_WEIGHTED = _CONVS | {nn.Linear}
_BATCH_NORMS = _nn_types("BatchNorm1d", "BatchNorm2d")
_SUPPORTED_TYPES = _ELEMENTWISE | _POOLS | _SOFTMAX | _WEIGHTED | _BATCH_NORMS | {nn.LayerNorm, nn.PReLU, nn.Flatten}


@dataclass(frozen=True)
class TensorAxes:
    """How one state-dict tensor moves under the permutation groups.

    `view` is the shape it is permuted in: its own shape, except where a Flatten turned (C, *S)
    into C*S features (channel-major: feature c*S + s), which are split into (C, S) so that the
    channel group acts on them.
    """

    shape: tuple[int, ...]
    view: tuple[int, ...]
    axes: tuple[str | None, ...]  # per axis of `view`: the group acting on it, or None


@dataclass(frozen=True, eq=False)
class PermutationSpec:
    """The permutation groups of a network (hidden units of each layer) and every tensor's axes."""

    groups: dict[str, int]  # group (the layer that makes the units) -> number of units, network order
    tensors: dict[str, TensorAxes]  # every state-dict key of the model, in state-dict order

    def touching(self, group: str) -> list[tuple[str, int]]:
        """(key, axis of its view) for every tensor axis the group permutes."""
        return [(key, axis) for key, t in self.tensors.items() for axis, g in enumerate(t.axes) if g == group]


# --------------------------------------------------------------------------- the spec, traced


@dataclass
class _Flow:
    """What flows from one layer to the next, as far as permutations are concerned."""

    group: str | None = None  # group on the channel/feature axis; None: the input's or the classes
    units: int = 0  # size of `group`
    kind: str = "input"  # "input", "spatial" (N, C, *S) or "flat" (N, F)
    flattened: bool = False  # flat features came from a Flatten over (C, *S): F = C * S


def _refuse(name: str, module: nn.Module, why: str = "is not a supported layer") -> NoReturn:
    raise ValueError(f"cannot align: module {name or '<model>'!r} ({type(module).__name__}) {why}; {SUPPORTED}")


def _leaves(module: nn.Module, prefix: str, seen: set[int]) -> list[tuple[str, nn.Module]]:
    """The chain's layers in forward order, nested Sequentials opened. A module with children that
    is not a plain Sequential is returned as one leaf (and refused later as unsupported)."""
    if id(module) in seen:
        _refuse(prefix, module, "appears twice in the chain (shared weights)")
    seen.add(id(module))
    plain_sequential = isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward
    if not plain_sequential:
        return [(prefix, module)]
    if any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False)):
        _refuse(prefix, module, "holds tensors of its own")
    out: list[tuple[str, nn.Module]] = []
    for name, child in module._modules.items():  # not named_children(): it hides a module used twice
        if child is not None:
            out += _leaves(child, f"{prefix}.{name}" if prefix else name, seen)
    return out


def _advance(flow: _Flow, group: str | None, units: int, kind: str, groups: dict[str, int]) -> None:
    if group is not None:
        groups[group] = units
    flow.group, flow.units, flow.kind, flow.flattened = group, units, kind, False


def _features(name: str, module: nn.Module, flow: _Flow, n: int) -> tuple[tuple[int, ...], tuple[str | None, ...]]:
    """View and axes of a per-feature axis of length `n` (the units of the incoming group)."""
    if flow.group is None:
        return (n,), (None,)
    if n == flow.units:
        return (n,), (flow.group,)
    if flow.flattened and n % flow.units == 0:  # Flatten over (C, S): feature c*S + s
        return (flow.units, n // flow.units), (flow.group, None)
    _refuse(name, module, f"expects {n} features but {flow.group!r} gives {flow.units} units")


def _linear(name: str, m: nn.Linear, flow: _Flow, out_group: str | None, groups: dict[str, int]) -> Axes:
    if flow.group is not None and flow.kind == "spatial":
        _refuse(name, m, "acts on the last spatial axis, not on the channels (Flatten first)")
    in_view, in_axes = _features(name, m, flow, m.in_features)
    local: Axes = {"weight": ((m.out_features, *in_view), (out_group, *in_axes))}  # (out, in)
    if m.bias is not None:
        local["bias"] = ((m.out_features,), (out_group,))
    _advance(flow, out_group, m.out_features, "flat", groups)
    return local


def _conv(name: str, m: nn.Conv1d | nn.Conv2d, flow: _Flow, out_group: str | None, groups: dict[str, int]) -> Axes:
    if m.groups != 1:
        _refuse(name, m, f"has groups={m.groups} (only groups=1 is supported)")
    if flow.group is not None and flow.kind == "flat":
        _refuse(name, m, "follows flat features; a convolution needs (N, C, *S) inputs")
    if flow.group is not None and m.in_channels != flow.units:
        _refuse(name, m, f"expects {m.in_channels} channels but {flow.group!r} gives {flow.units}")
    kernel = tuple(m.weight.shape[2:])
    local: Axes = {"weight": ((m.out_channels, m.in_channels, *kernel),  # (out, in, *kernel)
                              (out_group, flow.group, *(None,) * len(kernel)))}
    if m.bias is not None:
        local["bias"] = ((m.out_channels,), (out_group,))
    _advance(flow, out_group, m.out_channels, "spatial", groups)
    return local


def _norm(name: str, m: nn.Module, flow: _Flow, n: int, keys: tuple[str, ...]) -> Axes:
    """Per-unit tensors of a normalization layer; BatchNorm's running statistics move with them
    (num_batches_tracked is a count, not per unit, and stays)."""
    view_axes = _features(name, m, flow, n)
    return {key: view_axes for key in keys if getattr(m, key, None) is not None}


def _layer(name: str, m: nn.Module, flow: _Flow, is_head: bool, groups: dict[str, int]) -> Axes:
    """Update `flow` through one layer and return how its own tensors move."""
    kind = type(m)
    hidden = flow.group is not None
    if kind is nn.Linear:
        return _linear(name, m, flow, None if is_head else name, groups)
    if kind in _CONVS:
        return _conv(name, m, flow, None if is_head else name, groups)
    if kind in _BATCH_NORMS:
        if hidden and kind is nn.BatchNorm2d and flow.kind != "spatial":
            _refuse(name, m, "follows flat features")
        return _norm(name, m, flow, m.num_features, ("weight", "bias", "running_mean", "running_var"))
    if kind is nn.LayerNorm:
        if len(m.normalized_shape) != 1:
            _refuse(name, m, f"normalizes over {len(m.normalized_shape)} axes (only the feature axis is supported)")
        if hidden and flow.kind == "spatial":
            _refuse(name, m, "normalizes over the last spatial axis, not over the channels")
        return _norm(name, m, flow, m.normalized_shape[0], ("weight", "bias"))
    if kind is nn.PReLU:
        return {} if m.num_parameters == 1 else _norm(name, m, flow, m.num_parameters, ("weight",))
    if kind is nn.Flatten:
        if hidden and (m.start_dim, m.end_dim) != (1, -1):
            _refuse(name, m, f"flattens dims {m.start_dim}..{m.end_dim} (only start_dim=1, end_dim=-1)")
        flow.flattened = flow.flattened or (hidden and flow.kind == "spatial")
        flow.kind = "flat"
        return {}
    if kind in _POOLS and hidden and flow.kind != "spatial":
        _refuse(name, m, "pools over the feature axis")
    if kind in _SOFTMAX and hidden:
        _refuse(name, m, "mixes hidden units")
    return {}  # elementwise, dropout, identity, pooling over spatial axes


def permutation_spec(model: nn.Module) -> PermutationSpec:
    """Trace `model` (a chain of supported layers) into its permutation groups.

    Every Linear/Conv layer but the last (the output head) makes one group: its output units,
    named after the layer. The input features and the output classes are never permuted. Raises
    a one-line ValueError naming the first module the trace cannot follow.
    """
    leaves = _leaves(model, "", set())
    for name, module in leaves:
        if type(module) not in _SUPPORTED_TYPES:
            _refuse(name, module)
    weighted = [i for i, (_, module) in enumerate(leaves) if type(module) in _WEIGHTED]
    head = weighted[-1] if weighted else -1
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    groups: dict[str, int] = {}
    traced: dict[str, TensorAxes] = {}
    flow = _Flow()
    for i, (name, module) in enumerate(leaves):
        for local, (view, axes) in _layer(name, module, flow, i == head, groups).items():
            key = f"{name}.{local}" if name else local
            if key in shapes:
                traced[key] = TensorAxes(shapes[key], view, axes)
    tensors = {key: traced.get(key, TensorAxes(shape, shape, (None,) * len(shape))) for key, shape in shapes.items()}
    return PermutationSpec(groups, tensors)


# --------------------------------------------------------------------------- which groups may move


def blocked_groups(spec: PermutationSpec, trainable: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Group -> the tensors outside `trainable` that it touches (groups touching none are left out).

    Why: with a partial target (e.g. last BN + head) the rest of the network is frozen and shared
    by all models; permuting a group that touches it would change the shared rest too.
    """
    chosen = set(trainable)
    unknown = sorted(chosen - set(spec.tensors))
    if unknown:
        raise ValueError(f"not tensors of the model: {', '.join(unknown[:4])}")
    out = {}
    for group in spec.groups:
        frozen = tuple(dict.fromkeys(key for key, _ in spec.touching(group) if key not in chosen))
        if frozen:
            out[group] = frozen
    return out


def permutable_groups(spec: PermutationSpec, trainable: Iterable[str]) -> tuple[str, ...]:
    """The groups all of whose tensors are in `trainable`, in network order; () when none is.

    `trainable` names state-dict keys, buffers included: BatchNorm running statistics shared by
    all models block their group just as frozen weights do.
    """
    blocked = blocked_groups(spec, trainable)
    return tuple(group for group in spec.groups if group not in blocked)


def _chosen_groups(spec: PermutationSpec, available: set[str], groups: Iterable[str] | None) -> tuple[str, ...]:
    allowed = permutable_groups(spec, available)
    if groups is None:
        return allowed
    wanted = set(groups)
    for group in wanted - set(allowed):
        if group not in spec.groups:
            raise ValueError(f"unknown permutation group {group!r}; groups are: {', '.join(spec.groups)}")
        missing = blocked_groups(spec, available)[group]
        raise ValueError(f"group {group!r} cannot move: it also touches {', '.join(missing)}, not in the states")
    return tuple(group for group in allowed if group in wanted)


# --------------------------------------------------------------------------- permutations


def _check_state(state: State, spec: PermutationSpec) -> None:
    for key, value in state.items():
        if key not in spec.tensors:
            raise ValueError(f"{key!r} is not a tensor of the model; tensors are: {', '.join(list(spec.tensors)[:6])}...")
        if tuple(value.shape) != spec.tensors[key].shape:
            raise ValueError(f"{key!r} has shape {tuple(value.shape)}, the model's is {spec.tensors[key].shape}")


def _is_identity(perm: torch.Tensor) -> bool:
    return bool(torch.equal(perm.cpu(), torch.arange(len(perm))))


def _check_perms(perms: Mapping[str, torch.Tensor], spec: PermutationSpec) -> None:
    for group, perm in perms.items():
        if group not in spec.groups:
            raise ValueError(f"unknown permutation group {group!r}; groups are: {', '.join(spec.groups)}")
        if not torch.equal(torch.sort(perm.cpu().long()).values, torch.arange(spec.groups[group])):
            raise ValueError(f"perms[{group!r}] is not a permutation of {spec.groups[group]} units")


def apply_permutation(state: State, spec: PermutationSpec, perms: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A new state dict (same keys, dtypes, shapes, devices) with each group's units permuted.

    `state` may be part of the model's state (a target); a group that moves must then have all
    its tensors in it, or the frozen rest would silently go out of step (ValueError instead).
    Groups missing from `perms` stay in place.
    """
    _check_state(state, spec)
    _check_perms(perms, spec)
    moving = {group: perm.long() for group, perm in perms.items() if not _is_identity(perm)}
    for group in moving:
        missing = [key for key, _ in spec.touching(group) if key not in state]
        if missing:
            raise ValueError(f"permuting group {group!r} would also move {missing[0]!r}, which is not in the "
                             f"state (frozen and shared?); align only permutable_groups(spec, state)")
    out = {}
    for key, value in state.items():
        t = spec.tensors[key]
        x, moved = value.reshape(t.view), False
        for axis, group in enumerate(t.axes):
            if group in moving:
                x, moved = x.index_select(axis, moving[group].to(x.device)), True
        out[key] = x.reshape(t.shape) if moved else value.clone()
    return out


def invert(perms: Mapping[str, torch.Tensor]) -> Perms:
    """The inverse permutations (argsort): apply(apply(s, perms), invert(perms)) == s."""
    return {group: torch.argsort(perm) for group, perm in perms.items()}


def random_permutations(spec: PermutationSpec, generator: torch.Generator | None = None,
                        groups: Iterable[str] | None = None) -> Perms:
    """Uniformly random permutations of `groups` (default: all), identity for the rest (CPU)."""
    chosen = set(spec.groups if groups is None else groups)
    return {group: torch.randperm(n, generator=generator) if group in chosen else torch.arange(n)
            for group, n in spec.groups.items()}


def _take(x: torch.Tensor, perm: torch.Tensor, dim: int) -> torch.Tensor:
    """x (B, ...) permuted along `dim` by each model's own perm (B, n)."""
    shape = [1] * x.dim()
    shape[0], shape[dim] = perm.shape
    return torch.take_along_dim(x, perm.reshape(shape), dim)


def _permute_stacked(stacked: State, spec: PermutationSpec, perms: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Batched apply_permutation: tensors (B, *shape), perms (B, n) per group."""
    out = {}
    for key, value in stacked.items():
        t = spec.tensors[key]
        x = value.reshape(len(value), *t.view)
        for axis, group in enumerate(t.axes):
            if group in perms:
                x = _take(x, perms[group].to(x.device), axis + 1)
        out[key] = x.reshape(value.shape)
    return out


# --------------------------------------------------------------------------- weight matching


def _similarity(group: str, spec: PermutationSpec, ref: State, other: State, perms: Perms,
                rows: torch.Tensor) -> torch.Tensor:
    """C[b, i, j] = sum over tensors touching `group` of <unit i of the reference, unit j of model b>,
    model b's other axes permuted by its current permutations: the objective of the linear
    assignment step of weight matching (Git Re-Basin, Algorithm 1). Float64. (b, n, n)"""
    n = spec.groups[group]
    sim = torch.zeros(len(rows), n, n, dtype=torch.float64, device=rows.device)
    for key, axis in spec.touching(group):
        w_b = other[key][rows]  # (b, *view)
        for other_axis, g in enumerate(spec.tensors[key].axes):
            if g is not None and g != group and g in perms:
                w_b = _take(w_b, perms[g][rows], other_axis + 1)
        w_a = ref[key].movedim(axis, 0).reshape(n, -1)  # (n, m)
        w_b = w_b.movedim(axis + 1, 1).reshape(len(rows), n, -1)  # (b, n, m)
        sim += w_a @ w_b.transpose(1, 2)  # (b, n, n)
    return sim


def _assign(sim: torch.Tensor, perm: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Solve each model's assignment (scipy's Jonker-Volgenant solver, maximizing); keep the new
    permutation only where it strictly raises the objective, so ties cannot cycle. Returns the
    (b,) mask of models that moved; `perm` (B, n) is updated in place."""
    sim_np = sim.cpu().numpy()
    current = perm[rows].cpu().numpy()
    units = np.arange(sim_np.shape[1])
    moved = np.zeros(len(rows), dtype=bool)
    new = current.copy()
    for b in range(len(rows)):
        _, cols = linear_sum_assignment(sim_np[b], maximize=True)
        before, after = sim_np[b, units, current[b]].sum(), sim_np[b, units, cols].sum()
        if after > before + 1e-12 * (abs(before) + abs(after)):
            new[b], moved[b] = cols, True
    if moved.any():
        perm[rows] = torch.from_numpy(new).to(perm.device)
    return torch.from_numpy(moved)


def _match_stacked(reference: State, stacked: State, spec: PermutationSpec, groups: Sequence[str],
                   max_iter: int, seed: int) -> Perms:
    """Weight matching of B models at once (tensors (B, *shape)) to one reference: (B, n) per group.

    Lock-step coordinate descent: every sweep visits the groups in one random order (the same
    for all models, drawn from `seed`), and a model whose sweep changed nothing stops, so each
    model's result is what it would get alone.
    """
    if not groups:
        return {}
    keys = {key for group in groups for key, _ in spec.touching(group)}
    device = reference[next(iter(keys))].device
    batch = len(stacked[next(iter(keys))])
    ref = {key: reference[key].to(device, torch.float64).reshape(spec.tensors[key].view) for key in keys}
    other = {key: stacked[key].to(device, torch.float64).reshape(batch, *spec.tensors[key].view) for key in keys}
    perms = {group: torch.arange(spec.groups[group], device=device).repeat(batch, 1) for group in groups}
    active = torch.ones(batch, dtype=torch.bool)
    rng = np.random.default_rng(seed)
    for _ in range(max_iter):
        rows = active.nonzero().squeeze(1)
        moved = torch.zeros(len(rows), dtype=torch.bool)
        for g in rng.permutation(len(groups)):
            sim = _similarity(groups[g], spec, ref, other, perms, rows.to(device))
            moved |= _assign(sim, perms[groups[g]], rows.to(device))
        active[rows] = moved
        if not active.any():
            break
    return perms


def _stack(states: Sequence[State], keys: Iterable[str], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: torch.stack([s[key].to(device) for s in states]) for key in keys}


def weight_matching_many(reference: State, others: Sequence[State], spec: PermutationSpec, max_iter: int = 100,
                         seed: int = 0, groups: Iterable[str] | None = None) -> list[Perms]:
    """Weight matching of each of `others` to `reference`; one permutation dict per model.

    States may be partial (a target): only groups whose tensors are all present move (or the
    given `groups`, which must be among them); every group of the spec is in each result, the
    others as the identity. Permutations live on the reference's device.
    """
    _check_state(reference, spec)
    for state in others:
        _check_state(state, spec)
    available = set(reference).intersection(*others) if others else set(reference)
    chosen = _chosen_groups(spec, available, groups)
    keys = {key for group in chosen for key, _ in spec.touching(group)}
    device = next(iter(reference.values())).device if reference else torch.device("cpu")
    stacked = _stack(others, keys, device) if others and chosen else {}
    found = _match_stacked(reference, stacked, spec, chosen, max_iter, seed)
    return [{group: found[group][b] if group in found else torch.arange(n, device=device)
             for group, n in spec.groups.items()} for b in range(len(others))]


def weight_matching(reference: State, other: State, spec: PermutationSpec, max_iter: int = 100, seed: int = 0,
                    groups: Iterable[str] | None = None) -> Perms:
    """Permutations that make `other` best match `reference` (Git Re-Basin weight matching):
    apply_permutation(other, spec, result) is the aligned model. Deterministic for a seed."""
    return weight_matching_many(reference, [other], spec, max_iter, seed, groups)[0]


# --------------------------------------------------------------------------- conveniences


def _layout_items(layout: object) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) pairs from a pdiff ParamLayout (its .segments), its JSON form, or pairs."""
    items = getattr(layout, "segments", layout)
    pairs = []
    for item in items:
        if isinstance(item, Mapping):
            pairs.append((item["name"], tuple(item["shape"])))
        elif hasattr(item, "name"):
            pairs.append((item.name, tuple(item.shape)))
        else:
            name, shape = item
            pairs.append((name, tuple(shape)))
    return pairs


def _unflatten(vectors: torch.Tensor, items: list[tuple[str, tuple[int, ...]]]) -> dict[str, torch.Tensor]:
    """(B, D) -> {name: (B, *shape)} in layout order."""
    out, start = {}, 0
    for name, shape in items:
        size = int(np.prod(shape, dtype=np.int64))
        out[name] = vectors[:, start:start + size].reshape(len(vectors), *shape)
        start += size
    if start != vectors.shape[1]:
        raise ValueError(f"the layout covers {start} values but the vectors have {vectors.shape[1]}")
    return out


def _align_vectors(reference: torch.Tensor, vectors: torch.Tensor, spec: PermutationSpec, layout: object,
                   trainable: Iterable[str] | None, max_iter: int, seed: int) -> torch.Tensor:
    if layout is None:
        raise ValueError("aligning flat vectors needs their layout: (name, shape) pairs or a ParamLayout")
    if vectors.dim() != 2 or reference.shape != vectors.shape[1:]:
        raise ValueError(f"expected a (D,) reference and (K, D) vectors, got {tuple(reference.shape)} "
                         f"and {tuple(vectors.shape)}")
    items = _layout_items(layout)
    ref = {key: value[0] for key, value in _unflatten(reference[None], items).items()}
    stacked = _unflatten(vectors, items)
    _check_state(ref, spec)
    names = set(ref) if trainable is None else set(ref) & set(trainable)
    found = _match_stacked(ref, stacked, spec, permutable_groups(spec, names), max_iter, seed)
    moved = _permute_stacked(stacked, spec, found)
    return torch.cat([moved[name].reshape(len(vectors), -1) for name, _ in items], dim=1)


def align_to(reference: State | torch.Tensor, states: Sequence[State] | torch.Tensor,
             model: nn.Module | PermutationSpec, layout: object = None, trainable: Iterable[str] | None = None,
             max_iter: int = 100, seed: int = 0) -> list[dict[str, torch.Tensor]] | torch.Tensor:
    """Align many models to one reference; returns them aligned, in the form they came in.

    `states` is a list of (full or partial) state dicts, or a (K, D) tensor of flat vectors with
    their `layout` (a pdiff ParamLayout or (name, shape) pairs) and a (D,) reference vector.
    Only groups whose tensors are all trainable move: by default all tensors given (a vector
    holds only the target, so its frozen rest blocks the groups it touches); `trainable`
    narrows that. When no group can move, the models come back unchanged (copies).
    """
    spec = model if isinstance(model, PermutationSpec) else permutation_spec(model)
    if isinstance(states, torch.Tensor):
        return _align_vectors(reference, states, spec, layout, trainable, max_iter, seed)
    available = set(reference).intersection(*states) if states else set(reference)
    groups = permutable_groups(spec, available if trainable is None else available & set(trainable))
    perms = weight_matching_many(reference, states, spec, max_iter, seed, groups)
    return [apply_permutation(state, spec, perm) for state, perm in zip(states, perms)]


def run_representatives(runs: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """(K,) for each vector, the index of its run's last vector (runs < 0: the vector itself)."""
    runs = torch.as_tensor(runs).long()
    rep = torch.arange(len(runs))
    for run in runs.unique().tolist():
        if run >= 0:
            members = (runs == run).nonzero().squeeze(1)
            rep[members] = members[-1]
    return rep


def align_runs(reference: torch.Tensor, vectors: torch.Tensor, runs: Sequence[int] | torch.Tensor,
               spec: PermutationSpec, layout: object, trainable: Iterable[str] | None = None, max_iter: int = 100,
               seed: int = 0) -> torch.Tensor:
    """`align_to` for (K, D) flat vectors of several training runs: every vector of run r moves by
    the permutation that matches r's last vector to `reference` (runs < 0: each on its own).

    Why: the checkpoints of one run already share the order of their hidden units. Matched one by
    one to a reference from another run, neighbours on a trajectory can be given different orders
    (the matching is greedy and they are far from the reference), which tears the run apart in
    parameter space. A run's last vector matched to itself is the identity, so taking the
    reference from `run_representatives` leaves its whole run in place.
    """
    if vectors.dim() != 2 or reference.shape != vectors.shape[1:] or len(runs) != len(vectors):
        raise ValueError(f"expected a (D,) reference, (K, D) vectors and K runs, got {tuple(reference.shape)}, "
                         f"{tuple(vectors.shape)} and {len(runs)}")
    items = _layout_items(layout)
    ref = {key: value[0] for key, value in _unflatten(reference[None], items).items()}
    _check_state(ref, spec)
    names = set(ref) if trainable is None else set(ref) & set(trainable)
    chosen, rows = run_representatives(runs).unique(return_inverse=True)
    found = _match_stacked(ref, _unflatten(vectors[chosen], items), spec, permutable_groups(spec, names), max_iter,
                           seed)
    moved = _permute_stacked(_unflatten(vectors, items), spec, {g: perm[rows] for g, perm in found.items()})
    return torch.cat([moved[name].reshape(len(vectors), -1) for name, _ in items], dim=1)


def state_distance(a: State, b: State, keys: Iterable[str] | None = None) -> float:
    """L2 distance over `keys` (default: the floating-point tensors both states hold), in float64."""
    chosen = [k for k in a if k in b and a[k].is_floating_point()] if keys is None else list(keys)
    total = sum(float((a[k].double() - b[k].to(a[k].device).double()).pow(2).sum()) for k in chosen)
    return total ** 0.5


def aligned_distance(a: State, b: State, model: nn.Module | PermutationSpec, keys: Iterable[str] | None = None,
                     max_iter: int = 100, seed: int = 0) -> float:
    """state_distance(a, b) after weight matching b to a (only groups whose tensors both hold)."""
    spec = model if isinstance(model, PermutationSpec) else permutation_spec(model)
    perms = weight_matching(a, b, spec, max_iter, seed)
    return state_distance(a, apply_permutation(b, spec, perms), keys)
