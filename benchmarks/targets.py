"""The benchmarks' targets: each stated once, judged, printed, and turned into the exit code.

Why a shared helper: a benchmark that prints MISS and still exits 0 cannot fail the job that runs
it, and a target written twice (once in the comparison, once in the printed text) drifts apart.
So every script declares its targets as module constants (`Target`), fixed before the measurement
they judge, hands each measured value to `check` (one printed line: what, the value, the limit,
met or MISS) and ends with `exit_code(checks)`.

Exit codes shared by all benchmarks:
    0  every target met (or the benchmark has no target and says so: `no_target`)
    1  at least one target missed, or the measured work failed
    2  the measurement cannot run here (missing data or device); nothing was judged
"""
from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass

ALL_MET, MISSED, CANNOT_RUN = 0, 1, 2
MET_WORD, MISS_WORD = "met", "MISS"
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}


@dataclass(frozen=True)
class Target:
    """What is measured (`name`, with its unit), a comparison `op` and its `limit`.

    `op` is one of <=, <, >=, >, == (limit a number or a bool) or "in" (limit a closed
    (low, high) range). A NaN value never meets a target: a measurement that produced no number
    must not pass.
    """

    name: str
    op: str
    limit: float | bool | tuple[float, float]

    def __post_init__(self) -> None:
        ranged = isinstance(self.limit, tuple)
        if self.op not in (*_COMPARE, "in") or ranged != (self.op == "in"):
            raise ValueError(f"target {self.name!r}: op {self.op!r} does not fit limit {self.limit!r}")
        if ranged and not (len(self.limit) == 2 and self.limit[0] <= self.limit[1]):
            raise ValueError(f"target {self.name!r}: a range is (low, high), got {self.limit!r}")

    def met(self, value: float | bool) -> bool:
        """Whether `value` meets the target."""
        if isinstance(value, float) and math.isnan(value):
            return False
        if self.op == "in":
            low, high = self.limit  # type: ignore[misc]
            return low <= value <= high
        return _COMPARE[self.op](value, self.limit)  # type: ignore[arg-type]

    def describe(self) -> str:
        """The limit as printed: "<= 35", "in [0.85, 1.15]", "== yes"."""
        if self.op == "in":
            low, high = self.limit  # type: ignore[misc]
            return f"in [{_limit(low)}, {_limit(high)}]"
        return f"{self.op} {_limit(self.limit)}"  # type: ignore[arg-type]


@dataclass(frozen=True)
class Check:
    """One target judged on one measured value; `label` tells apart checks of the same target
    (one per setting, per data kind)."""

    target: Target
    value: float | bool
    label: str = ""

    @property
    def met(self) -> bool:
        return self.target.met(self.value)

    def line(self) -> str:
        """One line: what was measured, the value, the limit and met / MISS."""
        name = f"{self.label}: {self.target.name}" if self.label else self.target.name
        return (f"  {name:<56} {_value(self.value):>10}   limit {self.target.describe():<16} "
                f"{MET_WORD if self.met else MISS_WORD}")


def check(target: Target, value: float | bool, label: str = "") -> Check:
    """Judge `value` against `target`, print the line, return the check (collect it for `exit_code`)."""
    result = Check(target, value, label)
    print(result.line(), flush=True)
    return result


def exit_code(checks: Sequence[Check]) -> int:
    """Print how many targets were met; 1 when any was missed, else 0 (also when there were none)."""
    if not checks:
        print("no target was checked")
        return ALL_MET
    met = sum(c.met for c in checks)
    print(f"{met} of {len(checks)} targets met" + ("" if met == len(checks) else f": {len(checks) - met} MISSED"))
    return ALL_MET if met == len(checks) else MISSED


def no_target(reason: str) -> int:
    """For a benchmark that only reports numbers: say so in one line, exit 0."""
    print(f"no target: {reason}")
    return ALL_MET


def cannot_run(reason: str) -> int:
    """The measurement needs something this machine lacks (data, a device): one line, exit 2."""
    print(f"cannot run here: {reason}")
    return CANNOT_RUN


def _value(value: float | bool) -> str:
    """A measured value as printed: yes/no for bools, whole numbers bare, else 3 decimals (0 past 1000,
    scientific below 0.01)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if math.isfinite(value) and value != 0 and abs(value) < 0.01:
        return f"{value:.2e}"  # a small fraction keeps its digits
    return f"{value:.3f}" if not math.isfinite(value) or abs(value) < 1000 else f"{value:.0f}"


def _limit(limit: float | bool) -> str:
    """A limit as printed: yes/no for bools, else as short as it was written (35, 0.85, 2048)."""
    return ("yes" if limit else "no") if isinstance(limit, bool) else f"{limit:g}"
