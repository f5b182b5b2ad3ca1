"""Table builders: pure functions from run data (scorecard, manifest, config) to DataFrames.

Numbers stay unrounded in the frames; pages format them for display (column_config), so a test
can compare what a page holds with the run files exactly.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from app.figures import format_seconds
from pdiff.core.config import flat_config
from pdiff.judge import statements

HEADLINE = [("n", "n"), ("best", "best"), ("mean", "mean"), ("median", "median"), ("min", "min"), ("std", "std"),
            ("max_iou_median", "max IoU (median)"), ("novelty_median", "novelty (median)"),
            ("nn_distance_median", "NN distance (median)"), ("ensemble_gain", "ensemble gain")]
ACCURACY = [("n", "n"), ("best", "best"), ("mean", "mean"), ("mean_ci", "mean 95% CI"), ("median", "median"),
            ("median_ci", "median 95% CI"), ("min", "min"), ("std", "std")]


def format_interval(value: Any) -> str:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return "-"
    return f"{value[0]:.2f} – {value[1]:.2f}"


def scorecard_frame(card: Mapping[str, Mapping[str, Any]], columns: Sequence[tuple[str, str]] = HEADLINE,
                    groups: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per group (index = group name); interval columns become 'lo – hi' text, missing
    values (e.g. no analysis yet) become NaN or '-'."""
    rows = []
    for g in groups if groups is not None else list(card):
        row = card.get(g, {})
        out: dict[str, Any] = {}
        for key, title in columns:
            value = row.get(key)
            if key.endswith("_ci"):
                out[title] = format_interval(value)
            else:
                out[title] = float("nan") if value is None else value
        rows.append(out)
    frame = pd.DataFrame(rows, index=pd.Index(list(groups if groups is not None else card), name="group"))
    if "n" in frame:
        frame["n"] = frame["n"].astype("Int64")
    return frame


# The verdict's evidence: (scorecard key, column title, format); intervals from "<key>_ci" (median: median_ci).
EVIDENCE = [("median", "median acc. %", ".2f"), ("good", "good %", ".0f"),
            ("max_iou_median", "max IoU", ".3f"), ("nn_distance_median", "NN dist.", ".3g"),
            ("iou_within", "IoU within", ".3f"), ("distinct_predictions", "distinct", "d"),
            ("nn_top_share", "top-3 NN", ".0%"), ("ensemble_gain", "ensemble gain", "+.2f")]
EVIDENCE_CI = {"median": "median_ci"}


def with_interval(row: Mapping[str, Any], key: str, fmt: str) -> str:
    """'value [lo, hi]' for a scorecard entry and its 95% interval; a dash when undefined."""
    value = row.get(key)
    if value is None:
        return "–"
    text = format(int(value), fmt) if fmt == "d" else format(value, fmt)
    ci = row.get(EVIDENCE_CI.get(key, f"{key}_ci"))
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        text += f" [{format(ci[0], fmt)}, {format(ci[1], fmt)}]"
    if key == "distinct_predictions" and row.get("n"):
        text += f" of {row['n']}"
    return text


RULER_COLUMNS = [("behaviour", "ruler: behaviour"), ("parameters", "ruler: parameters")]
FIRST = ("generated", "zoo", "heldout", "fresh", "copies")


def ruler_cell(row: Mapping[str, Any], measure: str) -> str:
    """'position [lo, hi]' of a group on one measure of the ruler; a dash where it has none."""
    place = (row.get("ruler") or {}).get(measure) or {}
    if place.get("position") is None:
        return "–"
    ci = place.get("ci")
    return f"{place['position']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def evidence_frame(card: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """The numbers behind the verdict: generated first, then the zoo, held-out checkpoints, fresh
    SGD, the copies and the baselines; each cell 'value [95% interval]' as text (index = group)."""
    order = [g for g in FIRST if g in card] + [g for g in card if g not in FIRST]
    columns = [t for _, t, _ in EVIDENCE] + [t for _, t in RULER_COLUMNS]
    rows = [{title: with_interval(card[g], key, fmt) for key, title, fmt in EVIDENCE}
            | {title: ruler_cell(card[g], m) for m, title in RULER_COLUMNS} for g in order]
    return pd.DataFrame(rows, index=pd.Index(order, name="group"), columns=columns)


def difference_frame(differences: Mapping[str, Sequence[Any]], name_a: str, judged: Mapping[str, bool]
                     ) -> pd.DataFrame:
    """Compare's table: one row per headline number; run A's value, then for every other run B its
    value, B − A and the 95% interval of B − A (text), and, where the two runs measure the same thing
    (`judged[B]`), whether the change is real (the interval excludes 0). `differences`: run B ->
    pdiff.judge.comparison.Difference list against A."""
    def fmt(value: float | None, decimals: int, sign: str = "") -> str:
        return "–" if value is None else f"{value:{sign}.{decimals}f}"

    labels: dict[str, tuple[str, float | None, int]] = {}
    for diffs in differences.values():
        for d in diffs:
            labels.setdefault(d.key, (d.label, d.a, d.decimals))
    columns = ["metric", name_a]
    rows = {key: {"metric": label, name_a: fmt(a, decimals)} for key, (label, a, decimals) in labels.items()}
    for name, diffs in differences.items():
        columns += [name, f"{name}: B − A", f"{name}: 95% CI"] + ([f"{name}: change"] if judged.get(name) else [])
        for d in diffs:
            row = rows[d.key]
            row[name], row[f"{name}: B − A"] = fmt(d.b, d.decimals), fmt(d.diff, d.decimals, "+")
            row[f"{name}: 95% CI"] = "–" if d.ci is None else f"[{d.ci[0]:+.{d.decimals}f}, {d.ci[1]:+.{d.decimals}f}]"
            if judged.get(name):
                row[f"{name}: change"] = statements.change_word(d.diff, d.ci) or "–"
    return pd.DataFrame(list(rows.values()), columns=columns).fillna("–")


def selection_frame(selected: Sequence[tuple[str, int]], accuracy: Mapping[str, Any], max_iou: Mapping[str, Any],
                    nn_index: Mapping[str, Any], nn_distance: Mapping[str, Any]) -> pd.DataFrame:
    """One row per picked model: accuracy, max IoU to the zoo, its nearest zoo model and distance."""
    rows = [{"model": f"{g} #{i}", "accuracy (%)": float(accuracy[g][i]), "max IoU to zoo": float(max_iou[g][i]),
             "nearest zoo model": f"zoo #{int(nn_index[g][i])}" if int(nn_index[g][i]) >= 0 else "–",
             "NN distance": float(nn_distance[g][i])} for g, i in selected]
    return pd.DataFrame(rows, columns=["model", "accuracy (%)", "max IoU to zoo", "nearest zoo model", "NN distance"])


def config_frame(config: Mapping[str, Any], default: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Every config key with its value (as JSON text) and whether it differs from `default`."""
    flat = flat_config(config)
    base = flat_config(default) if default is not None else {}
    rows = [{"key": k, "value": json.dumps(v), "changed": k in base and base[k] != v}
            for k, v in flat.items()]
    return pd.DataFrame(rows, columns=["key", "value", "changed"])


def config_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> pd.DataFrame:
    """Keys whose values differ between two configs (as JSON text)."""
    fa, fb = flat_config(a), flat_config(b)
    rows = [{"key": k, "A": json.dumps(fa.get(k)), "B": json.dumps(fb.get(k))}
            for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]
    return pd.DataFrame(rows, columns=["key", "A", "B"])


def stage_frame(stages: Sequence[Mapping[str, Any]], estimates: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Stage, status, time, an estimate of the time still to come, and key metrics, as shown
    under the pipeline diagram. `estimates`: stage -> pdiff.pipeline.estimate.Estimate (seconds, basis)."""
    rows = []
    for s in stages:
        metrics = s.get("metrics") or {}
        text = ", ".join(f"{k}={_short(v)}" for k, v in metrics.items() if not isinstance(v, dict))
        guess = (estimates or {}).get(s["name"])
        if guess is None:
            expected = ""
        elif s.get("status") == "running":
            expected = f"~{format_seconds(guess.seconds)} left ({guess.basis})"
        else:
            expected = f"~{format_seconds(guess.seconds)} ({guess.basis})"
        error = s.get("error") if s.get("status") in ("failed", "interrupted", "stopped") else None  # not a past one
        rows.append({"stage": s["name"], "status": s.get("status", "pending"), "time": format_seconds(s.get("seconds")),
                     "expected": expected, "metrics": text or (error or "")})
    frame = pd.DataFrame(rows, columns=["stage", "status", "time", "expected", "metrics"])
    return frame if estimates else frame.drop(columns="expected")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


FIDELITY = [("spread_ratio", "spread ratio"), ("precision", "precision"), ("recall", "recall"),
            ("self_recall", "recall of zoo halves"), ("fd", "Fréchet distance"), ("fd_floor", "FD of zoo halves")]


def fidelity_frame(card: Mapping[str, Mapping[str, Any]], space: str = "latent",
                   groups: Sequence[str] | None = None) -> pd.DataFrame:
    """Set-level fidelity of each group against the training zoo in `space` ("latent" or "param"),
    each metric beside the floor two halves of the zoo reach. Undefined values are NaN."""
    names = [g for g in (groups if groups is not None else card) if g in card and g != "zoo"]
    rows = [{title: _number(card[g].get(f"{space}_{key}")) for key, title in FIDELITY} for g in names]
    return pd.DataFrame(rows, index=pd.Index(names, name="group"), columns=[t for _, t in FIDELITY])


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def neighbour_frame(model: tuple[str, int], rows: Sequence[tuple[str, tuple[str, int]]], accuracy: Mapping[str, Any],
                    iou: Sequence[float], l2: Sequence[float], chosen: Sequence[float], space: str) -> pd.DataFrame:
    """The model in focus (first row) and each related model: its role, accuracy, IoU of wrong test
    predictions with the model in focus, L2 distance over the raw parameters and distance in `space`."""
    g, i = model
    out = [{"role": "in focus", "model": f"{g} #{i}", "accuracy (%)": float(accuracy[g][i]), "IoU with it": 1.0,
            "L2 distance": 0.0, f"distance ({space})": 0.0}]
    out += [{"role": role, "model": f"{m[0]} #{m[1]}", "accuracy (%)": float(accuracy[m[0]][m[1]]),
             "IoU with it": float(u), "L2 distance": float(d), f"distance ({space})": float(c)}
            for (role, m), u, d, c in zip(rows, iou, l2, chosen)]
    columns = ["role", "model", "accuracy (%)", "IoU with it", "L2 distance"]
    return pd.DataFrame(out, columns=columns + ([] if space == "parameters" else [f"distance ({space})"]))


def overlap_frame(overlap: Any, pred_a: Sequence[int], pred_b: Sequence[int], labels: Sequence[int],
                  names: tuple[str, str]) -> pd.DataFrame:
    """One row per test sample either model gets wrong (pdiff.judge.neighbours.Overlap): the shared
    ones first, then those only one of them gets wrong."""
    a, b = names
    parts = [("both", overlap.both), (f"only {a}", overlap.only_a), (f"only {b}", overlap.only_b)]
    rows = [{"test sample": int(s), "wrong by": who, "true class": int(labels[s]), f"{a} says": int(pred_a[s]),
             f"{b} says": int(pred_b[s])} for who, samples in parts for s in samples.tolist()]
    return pd.DataFrame(rows, columns=["test sample", "wrong by", "true class", f"{a} says", f"{b} says"])


def model_frame(values: Mapping[str, Mapping[str, Any]], groups: Sequence[str]) -> pd.DataFrame:
    """Every model of `groups`, one row each, with its per-model values (pdiff.judge.catalogue):
    the projector's table. NaN where a value is undefined."""
    columns = list(values)
    parts = []
    for g in groups:
        n = len(values["accuracy"][g])
        part = {"model": [f"{g} #{j}" for j in range(n)], "group": [g] * n, "index": list(range(n))}
        parts.append(pd.DataFrame(part | {c: pd.array(values[c][g], dtype="float64") for c in columns}))
    if not parts:
        return pd.DataFrame(columns=["model", "group", "index", *columns])
    return pd.concat(parts, ignore_index=True)
