"""The plan of an invocation: for every stage, reuse its finished result, link it from the store,
or run it, and why, in one line.

A stage is reused when its recorded fingerprint matches the one computed now (fingerprint.py);
otherwise the plan names the first difference: a config key, an input stage redone, a source file
of the code it runs, the dataset's content, the classifier, the imported checkpoint files, the device.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch

from ..core.config import RunConfig
from ..core.rundir import RunDir
from .contract import Stage
from .fingerprint import data_identity, stable_hash, stage_inputs, zoo_files_identity
from .store import Store
from .table import pipeline_for


@dataclass(frozen=True)
class Plan:
    """What one stage will do in this invocation: reuse its result, link it from the store, or run."""

    stage: Stage
    inputs: dict[str, Any]
    fingerprint: str
    action: str  # "reuse" | "store" | "run"
    reason: str = ""


def plan_run(run: RunDir, config: RunConfig, device: torch.device, forced: set[str] = frozenset(),
             store: Store | None = None, cache: dict[str, Any] | None = None) -> list[Plan]:
    """The action of every stage: reuse a matching finished result, link one from the store, or run."""
    cache = cache if cache is not None else {}
    manifest = run.manifest() if run.exists() else {}
    records = manifest.get("stages", {}) if isinstance(manifest.get("stages"), dict) else {}
    stages = pipeline_for(config)
    data = data_identity(config, cache) if any(s.uses_data for s in stages) else None
    files = zoo_files_identity(config, cache) if any(s.uses_files for s in stages) else None
    fingerprints: dict[str, str] = {}
    plans: list[Plan] = []
    rerun: set[str] = set()
    for stage in stages:
        inputs = stage_inputs(stage, config, device, fingerprints, data, files)
        fingerprint = stable_hash(inputs)
        fingerprints[stage.name] = fingerprint
        record = records.get(stage.name) if isinstance(records.get(stage.name), dict) else {}
        reason = _why_run(stage, record, inputs, fingerprint, run, rerun, stage.name in forced)
        if not reason:
            plans.append(Plan(stage, inputs, fingerprint, "reuse"))
            continue
        rerun.add(stage.name)
        from_store = store is not None and stage.name not in forced and store.lookup(stage.name, fingerprint)
        plans.append(Plan(stage, inputs, fingerprint, "store" if from_store else "run", reason))
    return plans


NEW = "not run yet"


def _why_run(stage: Stage, record: dict[str, Any], inputs: dict[str, Any], fingerprint: str, run: RunDir,
             rerun: set[str], forced: bool) -> str:
    """Why the stage must be (re)done, or "" when its finished result matches."""
    if forced:
        return "--force"
    status = record.get("status", "pending")
    if status != "done":
        return NEW if status == "pending" else status
    if record.get("fingerprint") == fingerprint:
        missing = [name for name in stage.writes if not run.file(name).exists()]
        return f"{missing[0]} is missing" if missing else ""
    old = record.get("inputs") if isinstance(record.get("inputs"), dict) else {}
    changed = [k for k, v in inputs["config"].items() if old.get("config", {}).get(k, v) != v]
    if changed:
        return "; ".join(f"{k}: {old['config'][k]!r} -> {inputs['config'][k]!r}" for k in changed[:3])
    sources = [u for u in inputs["upstream"] if u in rerun or old.get("upstream", {}).get(u) != inputs["upstream"][u]]
    if sources:
        return f"its input {', '.join(sources)} changed"
    if "code" not in old:
        return "made by an older version of pdiff"
    changed_code = code_changes(old["code"], inputs["code"])
    if changed_code:
        return f"its code changed: {changed_code}"
    for key, what in (("data", "the dataset's content changed"), ("classifier", "the classifier's code changed"),
                      ("files", "the checkpoint files in zoo.dir changed"), ("device", "the device changed")):
        if old.get(key) != inputs.get(key):
            return what if key != "device" else f"device {old.get(key)} -> {inputs.get(key)}"
    return "its inputs changed"


def describe_plan(plans: list[Plan], total: int | None = None) -> str:
    """One line: which stages are reused, linked from the store, or run, and why (`total`: how
    many stages the run has, when `plans` may stop before its last)."""
    if all(p.action == "reuse" for p in plans):
        whole = len(plans) == (total if total is not None else len(plans))
        names = f"all {len(plans)} stages" if whole else ", ".join(p.stage.name for p in plans)
        return f"plan: {names} reused (nothing changed)"
    parts = []
    for (action, reason), group in itertools.groupby(plans, key=lambda p: (p.action, p.reason)):
        names = ", ".join(p.stage.name for p in group)
        why = "" if reason == NEW else f" ({reason})"  # a stage never run needs no reason
        if action == "reuse":
            parts.append(f"{names} reused")
        elif action == "store":
            parts.append(f"{names} from the store{why}")
        else:
            parts.append(f"{names} run{why}")
    return "plan: " + "; ".join(parts)


def code_changes(old: Any, new: dict[str, str]) -> str:
    """The source files whose digest differs between two code records, or "" when none does."""
    old = old if isinstance(old, dict) else {}
    changed = sorted(path for path in set(old) | set(new) if old.get(path) != new.get(path))
    more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
    return ", ".join(changed[:3]) + more
