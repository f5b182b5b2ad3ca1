"""Ablation grids for the notebooks: many (setting, seed) runs, one tidy table of results.

An ablation is a base config, a dict of settings (label -> dotted-key overrides, see
`config.with_overrides`) and a list of seeds. `run_grid` puts every (setting, seed) through
pdiff's own `run_pipeline`, each into its own run directory under one root, and returns one row
(a flat dict) per run, read from the run's one metrics table (`report.metrics_table`);
`summarize` gives the mean and spread over seeds of every setting.

Re-running a grid is cheap, through the pipeline's own fingerprints: a run directory is named by
its label, seed and config hash, so a finished run is found and reused; and the runs of a grid
share one store (store.py), so a stage whose inputs a setting does not change (e.g. the zoo of
a noise-augmentation grid) is computed once per seed and linked into the other runs.

`PDIFF_QUICK=1` in the environment selects quick mode (small sizes, one seed) so that CI can
execute every notebook in about a minute; `base_config()` and `seeds()` read it.
"""
from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .core.config import RunConfig, config_hash, get, with_overrides
from .core.presets import preset
from .core.rundir import RunDir
from .core.runtime import make_generator, resolve_device
from .generator.samplers import make_sampler
from .judge import metrics
from .judge.analysis import good_threshold
from .judge.evaluate import BatchedEvaluator
from .pipeline.loaders import load_evaluation, load_generator, load_task
from .pipeline.report import metrics_table, text_table
from .pipeline.runner import load_run_config, run_pipeline
from .pipeline.table import STAGE_NAMES

Row = dict[str, Any]

QUICK_ENV = "PDIFF_QUICK"

# The notebooks' base: the preset's own generator (for `digits`: the MLP autoencoder and the MLP
# denoiser on whitened latents, DDPM sampling; notebook 07 shows why), with what a grid of a few
# dozen runs does not need switched off: baselines, the denoising trajectory, the snapshots and UMAP. The
# bootstrap is smaller (200 resamples) as the notebooks compare means over seeds.
FULL_OVERRIDES: dict[str, Any] = {
    "sample.trajectory_models": 0,
    "baselines.enabled": False,
    "analysis.umap": False,
    "analysis.bootstrap": 200,
    "diffusion.snapshots": 0,  # no training dynamics (notebook 09 asks for them)
}
# Quick mode (PDIFF_QUICK=1): everything small; the numbers only show that the notebook runs.
QUICK_OVERRIDES: dict[str, Any] = {
    **FULL_OVERRIDES,
    "classifier.epochs": 10,
    "collect.num_checkpoints": 50,
    "autoencoder.steps": 50,
    "diffusion.steps": 50,
    "diffusion.timesteps": 100,
    "sample.steps": 10,
    "sample.num_models": 20,
    "baselines.num_models": 20,
    "analysis.bootstrap": 50,
}

def quick_mode() -> bool:
    """True when the environment variable PDIFF_QUICK is set to anything but 0/false/no."""
    return os.environ.get(QUICK_ENV, "").strip().lower() not in ("", "0", "false", "no")


def base_config(overrides: Mapping[str, Any] | None = None, quick: bool | None = None,
                preset_name: str = "digits") -> RunConfig:
    """The ablation base config (full or quick sizes) of a preset, with `overrides` applied on top."""
    quick = quick_mode() if quick is None else quick
    start = preset(preset_name)
    sizes = _no_larger(QUICK_OVERRIDES, start) if quick else FULL_OVERRIDES
    return with_overrides(start, {**sizes, **(overrides or {})})


def _no_larger(sizes: Mapping[str, Any], config: RunConfig) -> dict[str, Any]:
    """Quick sizes never make a preset bigger: a count the preset already sets lower stays (the
    `mnist1d` classifier trains 3 epochs, not quick mode's 10)."""
    out = {}
    for key, value in sizes.items():
        current = get(config, key)
        counts = isinstance(value, int) and not isinstance(value, bool) and isinstance(current, int)
        out[key] = min(value, current) if counts and current > 0 else value  # 0 often means "the default"
    return out


def seeds(full: int = 3, quick: int = 1) -> list[int]:
    """Seeds 0..n-1: `full` of them normally, `quick` in quick mode."""
    return list(range(quick if quick_mode() else full))


def mode_name() -> str:
    return "quick" if quick_mode() else "full"


def runs_folder(name: str) -> Path:
    """Where a notebook keeps its runs: `$PDIFF_NOTEBOOK_RUNS/<name>`, else `runs/<name>` next to
    the notebook (git-ignored). Quick and full runs differ in config hash, so they never clash."""
    return Path(os.environ.get("PDIFF_NOTEBOOK_RUNS", "runs")) / name


# --------------------------------------------------------------------------- running a grid


def run_path(root: str | Path, label: str, config: RunConfig) -> Path:
    """`root/<label>-s<seed>-<config hash>`: a changed config gets a new folder, never a clash."""
    slug = re.sub(r"[^A-Za-z0-9.+-]+", "_", label).strip("_") or "run"
    return Path(root) / f"{slug}-s{config.seed}-{config_hash(config)}"


def run_grid(base: RunConfig, grid: Mapping[str, Mapping[str, Any]], seeds: Iterable[int], root: str | Path,
             groups: Sequence[str] | None = ("zoo", "generated"), log: Callable[[str], None] | None = print) -> list[Row]:
    """Run every (setting, seed) and return one row of metrics per run (see `run_metrics`).

    `grid` maps a label to dotted-key overrides of `base`; the seed overrides `base.seed`.
    `groups` are the model groups measured (None: every evaluated group, baselines included).
    Runs are done setting by setting, seed by seed; finished runs and stored stages are reused.
    """
    jobs = [(label, seed, with_overrides(base, {**overrides, "seed": seed}))
            for label, overrides in grid.items() for seed in seeds]
    rows = []
    for i, (label, seed, config) in enumerate(jobs, 1):
        path = run_path(root, label, config)
        started = time.perf_counter()
        plan: list[str] = []
        run = run_pipeline(path, config, log=plan.append)
        row = {"setting": label, "seed": seed, "run": str(path),
               **run_metrics(run, groups), **stage_metrics(run), **stage_seconds(run)}
        rows.append(row)
        if log is not None:
            shown = "generated" if "generated.median" in row else "zoo"
            log(f"[{i}/{len(jobs)}] {label} seed {seed}: {time.perf_counter() - started:.1f} s, "
                f"{plan[0].removeprefix('plan: ')}; {shown} median {row.get(f'{shown}.median', float('nan')):.2f}")
    return rows


def stage_metrics(run: RunDir, stages: Sequence[str] = ("collect", "autoencoder", "diffusion")) -> dict[str, float]:
    """The numeric metrics the manifest records for `stages` (by default collect, autoencoder
    and diffusion: e.g. `autoencoder.reconstruction_mse`, `diffusion.final_loss`)."""
    out = {}
    for stage in stages:
        for key, value in run.stage(stage).get("metrics", {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"{stage}.{key}"] = float(value)
    return out


def stage_seconds(run: RunDir) -> dict[str, float]:
    """`time.<stage>` compute seconds of each finished stage (a stage linked from the store keeps
    the time it took when it was computed, so a row says what its setting costs from scratch)
    and their sum as `time.total`."""
    out = {}
    for stage in STAGE_NAMES:
        info = run.stage(stage)
        if info.get("status") == "done" and "seconds" in info:
            out[f"time.{stage}"] = float(info["seconds"])
    out["time.total"] = sum(out.values())
    return out


# --------------------------------------------------------------------------- metrics

# scorecard key -> row key: the notebooks' short names for the medians over a group's models
_ROW_KEYS = {"max_iou_median": "max_iou", "nn_distance_median": "nn_distance", "novelty_median": "novelty",
             "nn_agreement_median": "nn_agreement"}


def run_metrics(run: RunDir, groups: Sequence[str] | None = ("zoo", "generated")) -> Row:
    """Per-group metrics of an analysed run, as flat `<group>.<metric>` keys, from the run's one
    metrics table (`report.metrics_table`; definitions in `analysis.group_rows`).

    For each group: accuracy `mean`, `median`, `best`, `min`, `std` (percent); `good`, the
    percentage of its models at most a point below the zoo's median; `max_iou`, the median over its
    models of the highest IoU of wrong-prediction sets with any zoo model (novelty = 1 - max_iou);
    `nn_distance`, the median L2 distance to the nearest zoo checkpoint; `iou_within`, the mean IoU
    between two models of the group (low = diverse); `distinct_predictions`; `ensemble_gain`.
    Undefined values (a one-checkpoint zoo has no zoo neighbour) are NaN.
    """
    table = metrics_table(run).rows
    row: Row = {}
    for g in table if groups is None else groups:
        for key, value in table.get(g, {}).items():
            if value is None:
                value = math.nan
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                row[f"{g}.{_ROW_KEYS.get(key, key)}"] = float(value) if key != "n" else value
    return row


def resample(run: RunDir, sampler: str = "ddim", steps: int = 50, num_models: int = 100, seed: int = 0,
             eta: float = 0.0) -> Row:
    """Sample `num_models` new models from a trained run with another sampler or step count,
    time the sampling (latents to decoded parameters), and evaluate them on the test split."""
    config = load_run_config(run)
    device = resolve_device(config.device)
    model = load_generator(run, config, device)
    task = load_task(run, config, device)
    generator = make_generator(seed, device)
    started = time.perf_counter()
    samples = model.sample(num_models, generator, sampler, steps, eta)
    seconds = time.perf_counter() - started
    evaluator = BatchedEvaluator(task.model, task.layout, task.dataset.x_test, task.dataset.y_test,
                                 config.evaluate.chunk_size, config.evaluate.batch_size)
    accuracy = evaluator.evaluate(samples.params).accuracy
    summary = metrics.accuracy_summary(accuracy)
    floor = good_threshold(load_evaluation(run).accuracy["zoo"])
    taken = len(make_sampler(sampler, model.diffusion, steps).timesteps)  # steps, not network calls (Heun: 2 a step)
    return {"sampler": sampler, "steps": taken, "seconds": seconds,
            **{f"generated.{k}": summary[k] for k in ("mean", "median", "best", "min", "std")},
            "generated.good": metrics.share_at_least(accuracy, floor)}


# --------------------------------------------------------------------------- tables


def summarize(rows: Sequence[Row], by: str | Sequence[str] = "setting",
              metrics: Sequence[str] | None = None) -> list[Row]:
    """Mean and spread over the rows of each `by` group (in first-appearance order).

    Each summary row holds the `by` keys, `n`, and per metric `m` its mean `m` and sample
    standard deviation `m_std` (NaN when n = 1). Metrics default to every numeric key except the
    `by` keys and `seed`. NaN values (a metric undefined for a run) are left out of the mean.
    """
    keys = [by] if isinstance(by, str) else list(by)
    if metrics is None:
        metrics = [k for k, v in rows[0].items() if k not in keys and k != "seed"
                   and isinstance(v, (int, float)) and not isinstance(v, bool)] if rows else []
    grouped: dict[tuple, list[Row]] = {}
    for row in rows:
        grouped.setdefault(tuple(row[k] for k in keys), []).append(row)
    out = []
    for values, members in grouped.items():
        summary: Row = dict(zip(keys, values)) | {"n": len(members)}
        for m in metrics:
            xs = [float(r[m]) for r in members if m in r and not math.isnan(float(r[m]))]
            mean = sum(xs) / len(xs) if xs else float("nan")
            std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else float("nan")
            summary[m], summary[f"{m}_std"] = mean, std
        out.append(summary)
    return out


def column(rows: Sequence[Row], key: str) -> list[Any]:
    """The values of one key over rows (NaN where a row lacks it): handy for plotting."""
    return [row.get(key, float("nan")) for row in rows]


def format_table(rows: Sequence[Row], columns: Mapping[str, str | tuple[str, int]] | Sequence[str],
                 digits: int = 2) -> str:
    """Fixed-width text table. `columns` maps a key to its title, or to (title, digits) for a
    column with its own precision. For a summary row, a metric `m` shows as "mean ± std" (just
    the mean when the spread is undefined); text and integer columns show as they are."""
    columns = dict(columns) if isinstance(columns, Mapping) else {c: c for c in columns}
    spec = {key: (title, digits) if isinstance(title, str) else tuple(title) for key, title in columns.items()}
    header = [title for title, _ in spec.values()]
    return text_table(header, [[_cell(row, key, places) for key, (_, places) in spec.items()] for row in rows])


def _cell(row: Row, key: str, digits: int) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "-"
    text = f"{value:.{digits}f}"
    std = row.get(f"{key}_std")
    if isinstance(std, float) and not math.isnan(std):
        text += f" ± {std:.{digits}f}"
    return text
