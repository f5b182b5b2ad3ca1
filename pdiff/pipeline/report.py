"""The one metrics table of a run: one row per group of models, as a dict or a printed table.

`metrics_table` is what every reader calls (the CLI's `report` and closing table, the app's
pages, the ablation runner, the notebooks). It returns the analysis stage's scorecard (computed
by `analysis.group_rows`) only while that stage is current; otherwise it falls back to the
accuracy statistics of a current evaluation and says which stage is stale, or refuses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.artifacts import ANALYSIS
from ..core.errors import RunError
from ..core.rundir import RunDir
from ..judge import metrics
from .loaders import load_evaluation
from .status import require_current, stage_states

COLUMNS = [("n", "n", "{:d}"), ("best", "best", "{:.2f}"), ("mean", "mean", "{:.2f}"),
           ("median", "median", "{:.2f}"), ("min", "min", "{:.2f}"), ("std", "std", "{:.2f}")]
ANALYSIS_COLUMNS = [("mean_ci", "mean 95% CI", "{:.2f}-{:.2f}"), ("max_iou_median", "max IoU", "{:.3f}"),
                    ("nn_distance_median", "NN dist", "{:.3f}"), ("iou_within", "IoU within", "{:.3f}"),
                    ("distinct_predictions", "distinct", "{:d}"), ("ensemble_gain", "ens. gain", "{:+.2f}")]

Table = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class MetricsTable:
    rows: Table  # group -> metrics, "zoo" first
    complete: bool  # the analysis' full scorecard (False: accuracy only)
    note: str = ""  # why only accuracy is shown (the analysis is pending or stale)


def metrics_table(run: RunDir, manifest: dict[str, Any] | None = None) -> MetricsTable:
    """The run's per-group metrics; a one-line RunError when even its evaluation is not current."""
    manifest = manifest if manifest is not None else run.manifest()
    states = stage_states(run, manifest)
    if states["analyse"].current:
        card = run.load(ANALYSIS)[1].get("scorecard")
        if not isinstance(card, dict) or "zoo" not in card or not all(isinstance(r, dict) for r in card.values()):
            raise RunError(f"{run.path}/{ANALYSIS} has no scorecard; redo it with python -m pdiff run --out {run.path} "
                           f"--force analyse")
        return MetricsTable(card, True)
    require_current(run, "evaluate", "no results to show", manifest)
    analyse = states["analyse"]
    why = f"stale ({analyse.stale})" if analyse.stale else analyse.status
    accuracy = load_evaluation(run).accuracy
    return MetricsTable({g: metrics.accuracy_summary(a) for g, a in accuracy.items()}, False,
                        f"accuracy only: the analyse stage is {why}; update it with python -m pdiff run --out {run.path}")


def format_table(card: Table) -> str:
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
