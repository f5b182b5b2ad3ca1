"""The ruler: where a group of models sits between copies of the training checkpoints and fresh
training, on two measures.

"Did the generator copy?" has no yardstick inside one SGD run: its checkpoints resemble each
other, and on a near-convex target (the last layers of a trained network) independent SGD lands
in the same basin and makes the same mistakes too. So the run carries two reference groups that
the generator never trained on, and the ruler is drawn between them:

- **copies** (position 0): training checkpoints with noise of 1 % of each coordinate's spread
  (`generator.baselines.copies`), copies by construction;
- **fresh SGD** (position 1): checkpoints of an independent SGD run from the same start with
  another data order (`zoo.collect.fresh_trajectory`): what retraining gives.

A group is placed on each measure by the median of its models' values against the two anchors:

- behaviour: each model's max IoU of wrong test predictions to the training checkpoints,
  position = (copies - group) / (copies - fresh);
- parameters: each model's L2 distance to the nearest training checkpoint, on a log scale,
  position = ln(group / copies) / ln(fresh / copies). Distances span orders of magnitude (fresh
  SGD lands tens of times as far from the checkpoints as the copies do), and what says "copy" is
  how many times farther than a copy a model sits: on a linear scale, copies with three times the
  noise and averages of 16 checkpoints were barely apart on digits (README, "How the answer is
  calibrated").

Intervals come from a joint bootstrap of the three groups (each resampled on its own). A measure
*resolves* only when its two anchors are told apart: their intervals do not overlap, and the gap
is wide enough to mean something (two steps of IoU, the change one test sample makes; fresh
training at least twice as far from the checkpoints as the copies). On `digits`, whose models get
about ten test samples wrong, behaviour cannot tell copies from fresh training; the parameters
can. Pure: tensors in, numbers out.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from . import metrics

COPIES, FRESH = "copies", "fresh"
MEASURES = ("behaviour", "parameters")
MIN_IOU_STEPS = 2.0  # behaviour: the anchors at least this many IoU steps apart
MIN_DISTANCE_RATIO = 2.0  # parameters: fresh training at least this many times farther than the copies
LEVEL = 0.95


@dataclass(frozen=True)
class Axis:
    """One measure of the ruler: the anchors' medians with their intervals, and whether they are
    told apart (`why` says why not)."""

    measure: str
    copies: float
    fresh: float
    copies_ci: tuple[float, float]
    fresh_ci: tuple[float, float]
    resolves: bool
    why: str = ""

    def record(self) -> dict:
        return asdict(self)


def axes(values: dict[str, dict[str, Tensor]], errors_median: float | None, n_boot: int,
         generator: torch.Generator) -> dict[str, Axis] | None:
    """Both measures' anchors from `values[group][measure]` (per-model values), or None when the
    run lacks one of the anchor groups. `errors_median` is the typical model's count of wrong test
    samples, which sets the smallest step of IoU."""
    if COPIES not in values or FRESH not in values:
        return None
    out = {}
    for measure in MEASURES:
        c, f = _finite(values[COPIES][measure]), _finite(values[FRESH][measure])
        if c.numel() == 0 or f.numel() == 0:
            return None
        c_ci = metrics.bootstrap_ci(c, n_boot, LEVEL, generator, "median")
        f_ci = metrics.bootstrap_ci(f, n_boot, LEVEL, generator, "median")
        c_med, f_med = metrics.median(c), metrics.median(f)
        why = _why_not(measure, c_med, f_med, c_ci, f_ci, errors_median)
        out[measure] = Axis(measure, c_med, f_med, c_ci, f_ci, not why, why)
    return out


def _why_not(measure: str, c: float, f: float, c_ci: tuple[float, float], f_ci: tuple[float, float],
             errors: float | None) -> str:
    """Why the two anchors cannot be told apart on `measure` ("" when they can)."""
    overlap = c_ci[0] <= f_ci[1] and f_ci[0] <= c_ci[1]
    if measure == "behaviour":
        step = 1.0 / (errors + 1.0) if errors is not None else 0.0
        if c - f < MIN_IOU_STEPS * step or overlap:
            return (f"copies and fresh SGD make nearly the same mistakes (median max IoU {c:.3f} vs {f:.3f}; a "
                    f"typical model gets {errors:.0f} test samples wrong, so one sample moves IoU by {step:.3f})")
        return ""
    if c <= 0:
        return "the copies sit on the checkpoints themselves (the zoo does not vary, so 1 % of its spread is nothing)"
    if f < MIN_DISTANCE_RATIO * c or overlap:
        return (f"fresh SGD ends up hardly farther from the training checkpoints than copies do (median distance "
                f"{f:.3g} vs {c:.3g})")
    return ""


def _finite(values: Tensor) -> Tensor:
    values = values.detach().reshape(-1).double().cpu()
    return values[~torch.isnan(values)]


def position(measure: str, value: float, axis: Axis) -> float:
    """0 at the copies' median, 1 at fresh training's (linear in IoU, logarithmic in distance)."""
    return float(positions(measure, torch.tensor([value]), torch.tensor([axis.copies]), torch.tensor([axis.fresh]))[0])


def positions(measure: str, group: Tensor, copies: Tensor, fresh: Tensor) -> Tensor:
    """Elementwise positions of medians `group` between `copies` (0) and `fresh` (1). A distance
    below a hundredth of the copies' counts as that hundredth (a repeated checkpoint is at 0)."""
    group, copies, fresh = group.double(), copies.double(), fresh.double()
    if measure == "behaviour":
        return (copies - group) / (copies - fresh)
    return torch.log(torch.maximum(group, copies / 100) / copies) / torch.log(fresh / copies)


def place(values: dict[str, dict[str, Tensor]], group: str, ruler: dict[str, Axis], n_boot: int,
          generator: torch.Generator) -> dict[str, dict]:
    """`group`'s position on each resolving measure with its interval (a joint bootstrap: the group
    and both anchors resampled independently in every replicate); a measure that does not resolve
    gets no position."""
    out = {}
    for measure, axis in ruler.items():
        g = _finite(values[group][measure])
        if not axis.resolves or g.numel() == 0:
            out[measure] = {"position": None, "ci": None}
            continue
        point = position(measure, metrics.median(g), axis)
        medians = [_resampled_medians(_finite(values[name][measure]), n_boot, generator) for name in (group, COPIES,
                                                                                                       FRESH)]
        ratio = positions(measure, *medians)
        ratio = ratio[torch.isfinite(ratio)]
        if ratio.numel() == 0:
            out[measure] = {"position": point, "ci": None}
            continue
        lo, hi = torch.quantile(ratio, torch.tensor([(1 - LEVEL) / 2, (1 + LEVEL) / 2], dtype=ratio.dtype)).tolist()
        out[measure] = {"position": point, "ci": [lo, hi]}
    return out


def _resampled_medians(values: Tensor, n_boot: int, generator: torch.Generator) -> Tensor:
    """(n_boot,) medians of resamples of `values` drawn with replacement."""
    idx = torch.randint(values.numel(), (n_boot, values.numel()), generator=generator)
    ordered = values[idx].sort(dim=1).values
    n = values.numel()
    return (ordered[:, (n - 1) // 2] + ordered[:, n // 2]) / 2
