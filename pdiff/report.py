"""The scorecard of a run: one row per group of models, as a dict or a printed table."""
from __future__ import annotations

from typing import Any

from . import metrics
from .runs import RunDir

COLUMNS = [("n", "n", "{:d}"), ("best", "best", "{:.2f}"), ("mean", "mean", "{:.2f}"),
           ("median", "median", "{:.2f}"), ("min", "min", "{:.2f}"), ("std", "std", "{:.2f}")]
ANALYSIS_COLUMNS = [("mean_ci", "mean 95% CI", "{:.2f}-{:.2f}"), ("max_iou_median", "max IoU", "{:.3f}"),
                    ("nn_distance_median", "NN dist", "{:.3f}"), ("ensemble_gain", "ens. gain", "{:+.2f}")]


def scorecard(run: RunDir) -> dict[str, dict[str, Any]]:
    """The analysis scorecard when the run has one, else accuracy statistics from evaluation."""
    if run.file("analysis.safetensors").exists():
        return run.load("analysis.safetensors")[1]["scorecard"]
    from .analysis import evaluated_groups

    accuracy = evaluated_groups(run)[0]
    return {group: metrics.accuracy_summary(acc) for group, acc in accuracy.items()}


def format_table(card: dict[str, dict[str, Any]]) -> str:
    """Fixed-width table; the analysis columns appear when the scorecard has them."""
    columns = COLUMNS + [c for c in ANALYSIS_COLUMNS if any(c[0] in row for row in card.values())]
    header = ["group"] + [title for _, title, _ in columns]
    rows = [[group] + [_cell(row.get(key), fmt) for key, _, fmt in columns] for group, row in card.items()]
    return text_table(header, rows)


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """Fixed-width text: the first column left-aligned, the rest right-aligned, a rule under the header."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths)))
             for r in [header, *rows]]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return fmt.format(*value)
    return fmt.format(int(value) if fmt == "{:d}" else value)
