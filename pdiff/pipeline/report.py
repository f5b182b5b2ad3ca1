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
from ..judge.verdict import Verdict, verdict
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
    ruler: dict[str, Any] | None = None  # the ruler's anchors per measure (judge/ruler.py), when measured
    alignment: dict[str, Any] | None = None  # whether parameters were measured between aligned models, and why
    fresh_note: str = ""  # why an imported zoo has no fresh-training reference ("" when it has one)
    runs: dict[str, Any] | None = None  # how the zoo clusters by run (judge/runs.py), for a zoo of several runs

    def verdict(self) -> Verdict:
        """The answer to "new or copied?" from this table (judge/verdict.py)."""
        return verdict(self.rows, self.ruler, self.fresh_note)


def metrics_table(run: RunDir, manifest: dict[str, Any] | None = None) -> MetricsTable:
    """The run's per-group metrics; a one-line RunError when even its evaluation is not current."""
    manifest = manifest if manifest is not None else run.manifest()
    states = stage_states(run, manifest)
    if states["analyse"].current:
        meta = run.load(ANALYSIS)[1]
        card = meta.get("scorecard")
        if not isinstance(card, dict) or "zoo" not in card or not all(isinstance(r, dict) for r in card.values()):
            raise RunError(f"{run.path}/{ANALYSIS} has no scorecard; redo it with python -m pdiff run --out {run.path} "
                           f"--force analyse")
        axes, alignment, runs = meta.get("ruler"), meta.get("alignment"), meta.get("runs")
        return MetricsTable(card, True, ruler=axes if isinstance(axes, dict) else None,
                            alignment=alignment if isinstance(alignment, dict) else None,
                            fresh_note=str(meta.get("fresh_note") or ""), runs=runs if isinstance(runs, dict) else None)
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


def answer_lines(table: MetricsTable) -> list[str]:
    """The verdict's headline, the generated models' place on the ruler and the caveats, as lines
    of text for the command line (empty while the analysis is not current)."""
    if not table.complete:
        return []
    result = table.verdict()
    lines = [f"answer: {result.answer}", f"  {result.headline}"]
    gen = table.rows.get("generated", {})
    for measure, axis in (table.ruler or {}).items():
        place = (gen.get("ruler") or {}).get(measure) or {}
        if not axis.get("resolves"):
            lines.append(f"  ruler, {measure}: cannot tell copies from fresh SGD here ({axis.get('why')})")
        elif place.get("position") is not None:
            lo, hi = place.get("ci") or (place["position"], place["position"])
            lines.append(f"  ruler, {measure}: {place['position']:.2f} [{lo:.2f}, {hi:.2f}] "
                         f"(0 = copies at {axis['copies']:.3g}, 1 = fresh SGD at {axis['fresh']:.3g})")
    lines += [f"  caveat: {caveat}" for caveat in result.caveats]
    if table.alignment:
        lines.append(f"parameter distances: {'aligned' if table.alignment.get('aligned') else 'as stored'} "
                     f"({table.alignment.get('why')})")
    lines += run_lines(table.runs)
    return lines


def run_lines(runs: dict[str, Any] | None) -> list[str]:
    """How the zoo clusters by run, in two lines (none for a zoo of one run)."""
    if not runs:
        return []
    f = _maybe
    spread = (f"runs: {len(runs['runs'])}; IoU of mistakes within a run {f(runs['iou_within_runs'], '.3f')}, between "
              f"runs {f(runs['iou_between_runs'], '.3f')}; distance within {f(runs['distance_within_runs'], '.3g')}, "
              f"between {f(runs['distance_between_runs'], '.3g')}")
    nearest = (f"  nearest checkpoint from the same run: {f(runs['nearest_same_run'], '.0%')} in parameters, "
               f"{f(runs['mistakes_same_run'], '.0%')} in mistakes (chance: {f(runs['chance_same_run'], '.0%')})")
    return [spread, nearest]


def _maybe(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def answer_record(table: MetricsTable) -> dict[str, Any]:
    """The table with its verdict and ruler, as JSON-able data (`report --json`)."""
    record: dict[str, Any] = {"complete": table.complete, "note": table.note, "ruler": table.ruler,
                              "alignment": table.alignment, "runs": table.runs, "groups": table.rows}
    if table.complete:
        result = table.verdict()
        record["verdict"] = {"answer": result.answer, "headline": result.headline, "position": result.position,
                             "position_ci": result.position_ci, "decided_by": result.decided_by,
                             "caveats": list(result.caveats), "cheap_matches": list(result.cheap_matches),
                             "evidence": [{"aspect": e.aspect, "status": e.status, "text": e.text}
                                          for e in result.evidence]}
    return record
