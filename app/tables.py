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


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config dict -> {"section.key": value}."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat |= flatten_config(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_frame(config: Mapping[str, Any], default: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Every config key with its value (as JSON text) and whether it differs from `default`."""
    flat = flatten_config(config)
    base = flatten_config(default) if default is not None else {}
    rows = [{"key": k, "value": json.dumps(v), "changed": k in base and _norm(base[k]) != _norm(v)}
            for k, v in flat.items()]
    return pd.DataFrame(rows, columns=["key", "value", "changed"])


def config_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> pd.DataFrame:
    """Keys whose values differ between two configs (as JSON text)."""
    fa, fb = flatten_config(a), flatten_config(b)
    rows = [{"key": k, "A": json.dumps(fa.get(k)), "B": json.dumps(fb.get(k))}
            for k in sorted(set(fa) | set(fb)) if _norm(fa.get(k)) != _norm(fb.get(k))]
    return pd.DataFrame(rows, columns=["key", "A", "B"])


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def stage_frame(stages: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Stage, status, time and key metrics, as shown under the pipeline diagram."""
    rows = []
    for s in stages:
        metrics = s.get("metrics") or {}
        text = ", ".join(f"{k}={_short(v)}" for k, v in metrics.items() if not isinstance(v, dict))
        rows.append({"stage": s["name"], "status": s.get("status", "pending"),
                     "time": format_seconds(s.get("seconds")), "metrics": text or (s.get("error") or "")})
    return pd.DataFrame(rows, columns=["stage", "status", "time", "metrics"])


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
