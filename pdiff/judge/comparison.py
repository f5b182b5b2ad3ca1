"""Two runs side by side: B - A for every headline number of one group, with a 95% interval.

Each run's scorecard gives a metric with its own 95% bootstrap interval. The interval of the
difference of two independent estimates is built from those two intervals by MOVER (the method of
variance estimates recovery, Zou & Donner 2008): with estimates a in [la, ua] and b in [lb, ub],

    B - A = b - a,  lower = (b - a) - sqrt((b - lb)^2 + (ua - a)^2),
                    upper = (b - a) + sqrt((ub - b)^2 + (a - la)^2).

It keeps asymmetric intervals asymmetric and needs nothing but the two scorecards, so Compare
reads the one metrics table of each run and never recomputes a metric. Numbers without an
interval (counts, the ensemble gain) get the difference alone.

A difference only means something between runs that measure the same thing: `mismatches` says
why two runs cannot be compared (another dataset, another target, another classifier, a zoo or
test split of another size: max IoU to 200 checkpoints is not max IoU to 20), and Compare then
shows the numbers without calling any difference real.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# (scorecard key, label, decimals); fidelity keys are compared when both runs have them.
HEADLINE: tuple[tuple[str, str, int], ...] = (
    ("median", "median accuracy (%)", 2),
    ("mean", "mean accuracy (%)", 2),
    ("best", "best accuracy (%)", 2),
    ("good", "good models (%)", 1),
    ("max_iou_median", "max IoU to the zoo (median)", 3),
    ("novelty_median", "novelty (median)", 3),
    ("nn_distance_median", "NN distance to the zoo (median)", 3),
    ("iou_within", "IoU within the group", 3),
    ("distinct_predictions", "distinct prediction vectors", 0),
    ("nn_top_share", "share nearest to the top-3 checkpoints", 2),
    ("ensemble_gain", "ensemble gain (points)", 2),
    ("latent_spread_ratio", "latent spread ratio (fidelity)", 2),
    ("latent_fd", "latent Fréchet distance (fidelity)", 3),
    ("latent_precision", "latent precision (fidelity)", 2),
    ("latent_recall", "latent recall (fidelity)", 2),
    ("param_recall", "parameter recall (fidelity)", 2),
)
CI_KEY = {"median": "median_ci", "mean": "mean_ci"}  # the others' interval is "<key>_ci"


@dataclass(frozen=True)
class RunFacts:
    """What two runs must share for their numbers to be compared."""

    dataset: str
    classifier: str
    target: str
    zoo: int  # training checkpoints (the zoo group's size)
    test_samples: int | None


FACT_WORDS = {"dataset": "dataset", "classifier": "classifier", "target": "generated parameters (collect.target)",
              "zoo": "training checkpoints in the zoo", "test_samples": "test samples"}


def run_facts(dataset: str, classifier: str, target: str, rows: Mapping[str, Mapping[str, Any]]) -> RunFacts:
    """A run's facts from its config's names and its scorecard (the zoo's size, the test split's)."""
    zoo = rows.get("zoo", {})
    test = zoo.get("test_samples")
    return RunFacts(dataset, classifier, target, int(zoo.get("n", 0)), int(test) if test is not None else None)


def mismatches(a: RunFacts, b: RunFacts) -> list[str]:
    """Why two runs' numbers cannot be compared, one phrase per differing fact; empty when they can."""
    out = []
    for key, words in FACT_WORDS.items():
        va, vb = getattr(a, key), getattr(b, key)
        if va is not None and vb is not None and va != vb:
            out.append(f"{words}: {va} vs {vb}")
    return out


@dataclass(frozen=True)
class Difference:
    key: str
    label: str
    a: float | None
    b: float | None
    diff: float | None  # b - a
    ci: tuple[float, float] | None  # 95% interval of b - a (None where a run has no interval)
    decimals: int


def interval(row: Mapping[str, Any], key: str) -> tuple[float, float] | None:
    ci = row.get(CI_KEY.get(key, f"{key}_ci"))
    return (float(ci[0]), float(ci[1])) if isinstance(ci, (list, tuple)) and len(ci) == 2 else None


def mover(a: float, a_ci: tuple[float, float], b: float, b_ci: tuple[float, float]) -> tuple[float, float]:
    """95% interval of b - a from the two estimates' own intervals (MOVER, see the module doc)."""
    (la, ua), (lb, ub) = a_ci, b_ci
    d = b - a
    return d - math.hypot(b - lb, ua - a), d + math.hypot(ub - b, a - la)


def compare_rows(row_a: Mapping[str, Any], row_b: Mapping[str, Any]) -> list[Difference]:
    """B - A for every headline number either row has (one group of two runs' scorecards)."""
    out = []
    for key, label, decimals in HEADLINE:
        a, b = _number(row_a.get(key)), _number(row_b.get(key))
        if a is None and b is None:
            continue
        diff = None if a is None or b is None else b - a
        a_ci, b_ci = interval(row_a, key), interval(row_b, key)
        ci = mover(a, a_ci, b, b_ci) if diff is not None and a_ci and b_ci else None
        out.append(Difference(key, label, a, b, diff, ci, decimals))
    return out


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
