"""Is a stage's result current? Read from the manifest alone, so readers (report, app,
notebooks) can tell without loading data or code that made the run.

A finished stage records the fingerprint inputs it consumed (see plan.py): its config values,
the fingerprints of the stages it read from, and the digests of the source files it ran. Its result is
*stale* when any of those no longer matches the run: a config key it reads changed, a stage it
read from was redone, is unfinished or stale itself, or the code that makes it changed. Readers
never show a stale result as current; they name the stage and the reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.config import flat_config
from ..core.errors import RunError
from ..core.rundir import RunDir
from .plan import code_changes
from .table import BY_NAME, names, pipeline_of


@dataclass(frozen=True)
class StageState:
    name: str
    status: str  # pending | running | done | failed | interrupted
    stale: str | None = None  # why a done stage no longer matches its inputs; None when current
    record: dict[str, Any] | None = None

    @property
    def current(self) -> bool:
        return self.status == "done" and self.stale is None


def stage_states(run: RunDir, manifest: dict[str, Any] | None = None) -> dict[str, StageState]:
    """Every stage of the run's pipeline (pipeline order) with its status and, for finished ones,
    whether its result is still current."""
    manifest = manifest if manifest is not None else run.manifest()
    if not isinstance(manifest, dict):
        raise RunError(f"{run.path}/run.json is damaged (not a JSON object); delete the run or redo it")
    records = manifest.get("stages") if isinstance(manifest.get("stages"), dict) else {}
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    current = flat_config(config)
    order = names(pipeline_of(config))
    states: dict[str, StageState] = {}
    for name in order:
        record = records.get(name)
        record = record if isinstance(record, dict) else {}
        status = record.get("status") if isinstance(record.get("status"), str) else "pending"
        stale = _why_stale(name, record, current, states, order) if status == "done" else None
        states[name] = StageState(name, status, stale, record)
    return states


def _why_stale(name: str, record: dict[str, Any], config: dict[str, Any], done: dict[str, StageState],
               order: list[str]) -> str | None:
    inputs = record.get("inputs")
    if not isinstance(inputs, dict) or "fingerprint" not in record:
        return "made by an older version of pdiff (no fingerprint)"
    if "code" not in inputs:
        return "made by an older version of pdiff (no code record)"
    changed = code_changes(inputs["code"], BY_NAME[name].code)
    if changed:
        return f"made by other code ({changed} changed)"
    recorded = inputs.get("config") if isinstance(inputs.get("config"), dict) else {}
    changed = [key for key, value in recorded.items() if config.get(key, value) != value]
    if changed:
        key = changed[0]
        return f"config changed since it ran ({key}: {recorded[key]!r} -> {config.get(key)!r})"
    upstream = inputs.get("upstream") if isinstance(inputs.get("upstream"), dict) else {}
    for source in [s for s in order if s in upstream]:  # pipeline order (JSON keeps keys sorted)
        fingerprint = upstream[source]
        state = done.get(source)
        if state is None or state.status != "done":
            return f"its input {source} is {state.status if state else 'unknown'}"
        if state.stale is not None:
            return f"its input {source} is stale"
        if (state.record or {}).get("fingerprint") != fingerprint:
            return f"its input {source} was redone since"
    return None


def require_current(run: RunDir, stage: str, what: str, manifest: dict[str, Any] | None = None) -> None:
    """Raise a one-line RunError unless `stage` is done and current; the message says how to fix it."""
    states = stage_states(run, manifest)
    if stage not in states:
        raise RunError(f"{what}: {run.path} has no {stage} stage (its stages: {', '.join(states)}; a run made "
                       f"with generate=false has no generator)")
    state = states[stage]
    fix = f"update it with python -m pdiff run --out {run.path}"
    if state.status != "done":
        raise RunError(f"{what}: the {stage} stage of {run.path} is {state.status}; {fix}")
    if state.stale is not None:
        raise RunError(f"{what}: the {stage} stage of {run.path} is stale ({state.stale}); {fix}")
