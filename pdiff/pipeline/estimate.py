"""How long will each stage of a run take? Estimates from the run's progress and from other runs.

- The running stage: from its progress so far (elapsed time over the share done), per phase.
- A stage not run yet: the time the same stage took in another finished run on the same kind of
  device; an exact match of the stage's config is taken as it is, otherwise the time is scaled by
  the stage's amount of work (`WORK`: what its time grows with, e.g. training steps).

Pure functions of manifests (dicts read from run.json) and progress.json, so they are testable
without running anything; the app shows them beside the pipeline while a run builds.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..core.config import flat_config
from .table import BY_NAME, names, pipeline_of


def _models(c: Mapping[str, Any]) -> float:
    """Models a run evaluates: checkpoints, generated, and the baselines (about 6 groups)."""
    baselines = c["baselines.num_models"] * 6 if c.get("baselines.enabled", True) else 0
    return c["collect.num_checkpoints"] + c["sample.num_models"] + baselines


# What a stage's time grows with (roughly in proportion), from the flat config.
WORK: dict[str, Callable[[Mapping[str, Any]], float]] = {
    "collect": lambda c: c["classifier.epochs"] + c["collect.num_checkpoints"] * c["collect.steps_per_checkpoint"] / 50,
    "import": lambda c: 1.0,  # the number of files is not in the config: another import's time, as it is
    "autoencoder": lambda c: c["autoencoder.steps"],
    "diffusion": lambda c: c["diffusion.steps"],
    "sample": lambda c: c["sample.num_models"],
    "baselines": lambda c: c["baselines.num_models"],
    "evaluate": _models,
    "analyse": lambda c: _models(c) ** 2,
}


@dataclass(frozen=True)
class Estimate:
    seconds: float  # remaining (running stage) or total (pending stage)
    basis: str  # how it was estimated, in words


def remaining(progress: Mapping[str, Any] | None, started: float | None, now: float) -> Estimate | None:
    """Seconds left in the running stage's current phase, from its progress so far.

    `progress` is progress.json (done, total, info, time), `started` when the stage (or its
    current phase, if known) began. None until a share of the work is done.
    """
    if not progress or not started:
        return None
    done, total = progress.get("done") or 0, progress.get("total") or 0
    elapsed = now - started
    if done <= 0 or total <= 0 or elapsed <= 0 or done >= total:
        return None
    phase = (progress.get("info") or {}).get("phase")
    return Estimate(elapsed * (total - done) / done, f"from its progress{f' in {phase}' if phase else ''}")


def _work(stage: str, config: Mapping[str, Any]) -> float | None:
    try:
        work = float(WORK[stage](config))
    except (KeyError, TypeError, ValueError):
        return None
    return work if work > 0 else None


def stage_config(stage: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The flat config values `stage` reads (its declared keys)."""
    keys = BY_NAME[stage].config_keys
    flat = flat_config(dict(config))
    return {k: v for k, v in flat.items() if any(k == d or k.startswith(d + ".") for d in keys)}


def from_other_runs(manifest: Mapping[str, Any], others: Iterable[Mapping[str, Any]]) -> dict[str, Estimate]:
    """An estimate for every stage of `manifest` not done yet, from finished stages of `others`.

    Only stages that really ran (not reused from the store) on the same kind of device count. The
    newest exact config match wins; otherwise the closest amount of work, scaled linearly.
    """
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    device = str(manifest.get("device", "")).split(":")[0]
    stages = manifest.get("stages") if isinstance(manifest.get("stages"), dict) else {}
    flat = flat_config(config)
    out: dict[str, Estimate] = {}
    for stage in names(pipeline_of(config)):
        if (stages.get(stage) or {}).get("status") == "done":
            continue
        mine, work = stage_config(stage, config), _work(stage, flat)
        exact, scaled = None, []
        for other in others:
            record = (other.get("stages") or {}).get(stage) or {}
            seconds = record.get("seconds")
            other_device = str(record.get("device") or other.get("device", "")).split(":")[0]
            if record.get("status") != "done" or record.get("reused") or not seconds or other_device != device:
                continue
            other_config = other.get("config") if isinstance(other.get("config"), dict) else {}
            if stage_config(stage, other_config) == mine:
                exact = float(seconds)
                break
            other_work = _work(stage, flat_config(other_config))
            if work and other_work:
                scaled.append((abs(math.log(work / other_work)), float(seconds) * work / other_work))
        if exact is not None:
            out[stage] = Estimate(exact, "another run, same settings")
        elif scaled:
            out[stage] = Estimate(min(scaled)[1], "another run, scaled by the amount of work")
    return out
