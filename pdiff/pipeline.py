"""The stages of a run, their artifacts, and resuming.

Each stage reads its inputs from the run directory and writes its outputs there, so a stage can
run in a fresh process: that is what makes an interrupted run resume at the first unfinished
stage, and what lets the app, the CLI and notebooks share one code path. Each stage seeds itself
from the run seed and its own index, so a resumed run equals an uninterrupted one.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import distributed, stages
from .config import RunConfig, config_from_dict, config_hash, config_to_dict, validate
from .runs import RunDir, RunError, versions
from .runtime import resolve_device

StageProgress = Callable[[str, int, int, dict], None]  # (stage, done, total, info)

STAGES: dict[str, Callable[[StageContext], dict[str, Any]]] = {
    "collect": stages.collect,
    "autoencoder": stages.autoencoder,
    "diffusion": stages.diffusion,
    "sample": stages.sample,
    "baselines": stages.baselines,
    "evaluate": stages.evaluate,
    "analyse": stages.analyse,
}
STAGE_NAMES = list(STAGES)
MAIN_ONLY = {"baselines", "analyse"}  # cheap, no collectives: rank 0 alone under torchrun


@dataclass
class StageContext:
    run: RunDir
    config: RunConfig
    device: torch.device
    stage: str
    index: int
    report: StageProgress | None = None

    @property
    def seed(self) -> int:
        """Per-stage seed: stages are reproducible on their own, in any process."""
        return self.config.seed * 1000 + self.index

    def progress(self, done: int, total: int, info: dict | None = None) -> None:
        if self.report is not None:
            self.report(self.stage, done, total, info or {})


class ThrottledProgress:
    """Writes progress.json at most every `interval` seconds, for the app to poll, and forwards."""

    def __init__(self, run: RunDir, forward: StageProgress | None = None, interval: float = 0.5) -> None:
        self.run, self.forward, self.interval, self.last = run, forward, interval, 0.0

    def __call__(self, stage: str, done: int, total: int, info: dict) -> None:
        now = time.monotonic()
        if now - self.last >= self.interval or done >= total:
            self.run.write_progress(stage, done, total, info)
            self.last = now
        if self.forward is not None:
            self.forward(stage, done, total, info)


def prepare_run(path: str | Path, config: RunConfig, force: str | None = None) -> RunDir:
    """Create the run's manifest, or check an existing one was made with the same config."""
    validate(config)
    run = RunDir(path)
    if not distributed.is_main():  # rank 0 creates or checks; the others wait, then read
        distributed.barrier()
        if not run.exists():
            raise RunError(f"rank {distributed.current().rank} cannot see {run.path}/run.json: "
                           f"under torchrun on several nodes the run directory must be on a shared filesystem")
        return run
    if run.exists():
        stored = run.manifest().get("config")
        if stored is None:
            raise RunError(f"{run.path}/run.json has no config; the run directory is damaged")
        if config_to_dict(config_from_dict(stored)) != config_to_dict(config):
            diff = _config_diff(config_to_dict(config_from_dict(stored)), config_to_dict(config))
            raise RunError(f"{run.path} was made with a different config ({diff}); "
                           f"choose another --out or delete that run")
    else:
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_manifest({
            "config": config_to_dict(config), "config_hash": config_hash(config), "seed": config.seed,
            "versions": versions(), "created": time.time(),
            "stages": {name: {"status": "pending"} for name in STAGE_NAMES},
        })
    if force is not None:
        reset_from(run, force)
    distributed.barrier()
    return run


def reset_from(run: RunDir, stage: str) -> None:
    """Mark `stage` and every later stage pending, so they are recomputed."""
    if stage not in STAGES:
        raise RunError(f"unknown stage {stage!r}; stages are: {', '.join(STAGE_NAMES)}")
    manifest = run.manifest()
    for name in STAGE_NAMES[STAGE_NAMES.index(stage):]:
        manifest["stages"][name] = {"status": "pending"}
    run.write_manifest(manifest)


def run_stage(run: RunDir, config: RunConfig, stage: str, device: torch.device,
              report: StageProgress | None = None) -> dict[str, Any]:
    """Run one stage and record its status, times and metrics in the manifest."""
    context = StageContext(run, config, device, stage, STAGE_NAMES.index(stage), report)
    started = time.time()
    run.update_stage(stage, status="running", started=started, device=str(device))
    try:
        metrics = STAGES[stage](context)
    except BaseException as exc:  # KeyboardInterrupt too: the stage is redone on resume
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        run.update_stage(stage, status=status, error=f"{exc.__class__.__name__}: {exc}"[:500])
        raise
    ended = time.time()
    run.update_stage(stage, status="done", started=started, ended=ended, seconds=round(ended - started, 3),
                     metrics=metrics, error=None)
    return metrics


def run_pipeline(path: str | Path, config: RunConfig, force: str | None = None,
                 report: StageProgress | None = None, until: str | None = None) -> RunDir:
    """Run every unfinished stage in order (up to `until`); finished stages are reused.

    Under torchrun every rank runs this: training is data-parallel, sampling and evaluation are
    sharded, the cheap baselines and analysis run on rank 0, and only rank 0 writes.
    """
    distributed.setup()
    run = prepare_run(path, config, force)
    device = resolve_device(config.device)
    manifest = run.manifest()
    manifest["device"] = str(device)
    run.write_manifest(manifest)
    progress = ThrottledProgress(run, report)
    last = STAGE_NAMES.index(until) if until else len(STAGE_NAMES) - 1
    for stage in STAGE_NAMES[: last + 1]:
        if run.stage_done(stage):
            continue
        if distributed.is_main() or stage not in MAIN_ONLY:
            run_stage(run, config, stage, device, progress)
        distributed.barrier()  # later stages on every rank read what rank 0 wrote
    return run


def load_run_config(run: RunDir) -> RunConfig:
    try:
        return config_from_dict(run.manifest()["config"])
    except KeyError:
        raise RunError(f"{run.path}/run.json has no config; the run directory is damaged") from None


def _config_diff(old: dict, new: dict, prefix: str = "") -> str:
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = _config_diff(a, b, f"{prefix}{key}.")
            if inner:
                changes.append(inner)
        elif a != b:
            changes.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return "; ".join(changes)
