"""Running the stages: plan by fingerprints, reuse what matches, run the rest, record everything.

Each stage reads its inputs from the run directory and writes its outputs there, so a stage can
run in a fresh process: that is what makes an interrupted run resume at the first unfinished
stage, and what lets the app, the CLI and notebooks share one code path. Before anything runs,
every stage gets a fingerprint of exactly what it consumes (its declared config keys, the
fingerprints of the stages it reads from, its code version, the device kind, and for stages that
touch data the dataset's content and the classifier's identity). A stage whose recorded
fingerprint matches is reused; one found in the shared store (store.py) is linked in; any other
runs, and the plan says why in one line. Under torchrun every rank plans and runs alike, and only
rank 0 writes (the pipeline decides; the run directory knows nothing of ranks).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..core import distributed, limits, plugins, safety
from ..core import threads as thread_settings
from ..core.config import RunConfig, config_from_dict, config_hash, config_to_dict, flat_config, validate
from ..core.divergence import Diverged
from ..core.errors import RunError
from ..core.rundir import RunDir, versions
from ..core.runtime import resolve_device, stage_threads
from ..judge.projection import umap_cache_is_warm
from ..zoo.checkpoints import find_checkpoints
from ..zoo.classifiers import build_classifier
from ..zoo.datasets import load_dataset
from ..zoo.params import select_state_target, select_target
from .contract import ConfigView, RunView, Stage, StageContext, StageProgress
from .fingerprint import data_identity, stable_hash, stage_inputs, zoo_files_identity
from .plan import Plan, describe_plan, plan_run
from .store import Store, store_for
from .table import SEED_INDEX, absent_inputs, get_stage, names, pipeline_for, readable_keys, upstream

__all__ = ["load_run_config", "prepare_run", "reset_from", "run_pipeline", "run_stage"]


class ThrottledProgress:
    """Writes progress.json at most every `interval` seconds, for the app to poll, and forwards.

    Every reported loss is also kept, per stage and phase ("collect: checkpoints 1/1"), as
    [done, total, loss] points in `history` (with the wall time the phase started), written with
    the progress: the app draws live loss curves and estimates the time left from it. A curve longer than `max_points` keeps every other point, so the file stays
    small however long a stage trains.
    """

    def __init__(self, run: RunDir, forward: StageProgress | None = None, interval: float = 0.5,
                 writer: bool = True, max_points: int = 300) -> None:
        self.run, self.forward, self.interval, self.writer, self.last = run, forward, interval, writer, 0.0
        self.max_points = max_points
        self.history: dict[str, dict[str, Any]] = {}

    def __call__(self, stage: str, done: int, total: int, info: dict) -> None:
        if isinstance(info.get("loss"), (int, float)):
            self._record(stage, done, total, info)
        now = time.monotonic()
        if self.writer and (now - self.last >= self.interval or done >= total):
            self.run.write_progress(stage, done, total, info, self.history)
            self.last = now
        if self.forward is not None:
            self.forward(stage, done, total, info)

    def _record(self, stage: str, done: int, total: int, info: dict) -> None:
        key = f"{stage}: {info['phase']}" if info.get("phase") else stage
        curve = self.history.setdefault(key, {"stage": stage, "started": time.time(), "every": 1, "seen": 0,
                                              "points": []})
        if curve["seen"] % curve["every"] == 0:
            curve["points"].append([done, total, float(info["loss"])])
        curve["seen"] += 1
        if len(curve["points"]) > self.max_points:
            curve["points"] = curve["points"][::2]
            curve["every"] *= 2


# --------------------------------------------------------------------------- the run directory


def prepare_run(path: str | Path, config: RunConfig, cache: dict[str, Any] | None = None) -> RunDir:
    """Create the run's manifest, or take an existing run over to `config` (stages whose inputs
    changed are redone by the plan). A folder that is not a run is never written into.

    Before anything is written: the config's values and bounds, the dataset and classifier
    names (registered in this process, see plugins.py), and the memory the sizes need on this
    machine are checked, so a refused config never freezes into a run."""
    safety.check_run_path(path)
    validate(config)
    check_resources(config, cache if cache is not None else {})
    run = RunDir(path)
    if not distributed.is_main():  # rank 0 creates or updates; the others wait, then read
        distributed.barrier()
        if not run.exists():
            raise RunError(f"rank {distributed.current().rank} cannot see {run.path}/run.json: "
                           f"under torchrun on several nodes the run directory must be on a shared filesystem")
        return run
    stages = names(pipeline_for(config))
    try:
        if run.exists():
            manifest = run.manifest()
            manifest.update(config=config_to_dict(config), config_hash=config_hash(config), seed=config.seed,
                            stages=_reshaped(run, manifest.get("stages", {}), stages))
            run.write_manifest(manifest)
        else:
            _check_new_folder(run.path)
            run.path.mkdir(parents=True, exist_ok=True)
            run.write_manifest({
                "config": config_to_dict(config), "config_hash": config_hash(config), "seed": config.seed,
                "versions": versions(), "created": time.time(),
                "stages": {name: {"status": "pending"} for name in stages},
            })
    except OSError as exc:  # below a file, a read-only folder, a full disk
        where = safety.printable(str(exc.filename or run.path))
        raise RunError(f"cannot write the run at {safety.printable(str(run.path))}: {exc.strerror or exc} "
                       f"({where}); choose another --out") from None
    distributed.barrier()
    return run


def _reshaped(run: RunDir, records: dict[str, Any], stages: list[str]) -> dict[str, Any]:
    """The manifest's stage records for a run whose pipeline may have changed (zoo.dir, generate):
    a stage that leaves the pipeline may have been pending only, so no result is ever dropped."""
    gone = [name for name, record in records.items() if name not in stages
            and isinstance(record, dict) and record.get("status", "pending") != "pending"]
    if gone:
        raise RunError(f"{run.path} holds results of {', '.join(gone)}, which this config's run does not have "
                       f"(zoo.dir or generate changed); results are never dropped: choose another --out")
    return {name: records.get(name, {"status": "pending"}) for name in stages}


def check_resources(config: RunConfig, cache: dict[str, Any]) -> None:
    """The names the config uses are registered, an imported zoo's folder holds checkpoints, and
    the sizes fit this machine's memory (the dataset is loaded into `cache` for the stages of this
    invocation)."""
    plugins.check_names(config)
    sizing = config
    if config.zoo.dir:  # the memory estimate counts the files, not collect's sizes
        files = len(find_checkpoints(Path(config.zoo.dir).expanduser()))
        sizing = replace(config, collect=replace(config.collect, num_checkpoints=files, fresh=0))
    if "dataset" not in cache:
        cache["dataset"] = load_dataset(config.data)
    dataset = cache["dataset"]
    model = build_classifier(config.classifier.arch, dataset.input_shape, dataset.num_classes)
    state = model.state_dict()
    target = select_state_target(model, config.zoo.target) if config.zoo.dir else \
        select_target(model, config.collect.target)
    dim = sum(state[name].numel() for name in target)
    limits.check_memory(sizing, dim, len(dataset.y_test), dataset.num_classes)


def _check_new_folder(path: Path) -> None:
    if path.is_symlink() and not path.exists():
        raise RunError(f"{path} is a broken symbolic link; choose another --out")
    if path.exists() and not path.is_dir():
        raise RunError(f"{path} is a file, not a run directory; choose another --out")
    if path.is_dir() and any(path.iterdir()):
        raise RunError(f"{path} exists and is not a pdiff run (no run.json); choose another --out "
                       f"(an existing folder is never written into)")


def reset_from(run: RunDir, stage: str) -> None:
    """Mark `stage` and every later stage pending, so they are recomputed."""
    stages = pipeline_for(load_run_config(run))
    get_stage(stage, stages)
    order = names(stages)
    manifest = run.manifest()
    for name in order[order.index(stage):]:
        manifest["stages"][name] = {"status": "pending"}
    run.write_manifest(manifest)


def run_stage(run: RunDir, config: RunConfig, stage: str, device: torch.device,
              report: StageProgress | None = None, plan: Plan | None = None,
              cache: dict[str, Any] | None = None, threads: int | None = None) -> dict[str, Any]:
    """Run one stage and record its status, times, metrics, fingerprint and threads.

    The stage runs with `threads` intra-op threads, else the count `threads.configure_threads`
    chose, else torch's setting as it is; the caller's setting is restored afterwards. The stage
    sees the run and the config only through its contract (contract.py)."""
    cache = cache if cache is not None else {}
    stages = pipeline_for(config)
    declared = get_stage(stage, stages)
    if declared.uses_data:
        plugins.check_names(config)  # a missing registration: one line, before the stage is marked running
    if plan is None:  # a stage run on its own: fingerprint it from the stages it reads, as they are recorded
        plan = _single_plan(run, config, declared, device, cache)
    writer = distributed.is_main()
    context = StageContext(RunView(run, declared.reads, declared.writes, stage, absent_inputs(declared, stages)),
                           ConfigView(config, readable_keys(declared, stages), stage), device, stage,
                           SEED_INDEX[stage], report, writer, cache)
    choice = thread_settings.current()
    with stage_threads(threads if threads is not None else choice.count) as count:
        started = time.time()
        if writer:
            run.update_stage(stage, status="running", started=started, device=str(device),
                             threads=choice.record() | {"count": count})
        metrics = _run_recorded(run, config, declared, context, writer)
    ended = time.time()
    if writer:
        run.update_stage(stage, status="done", started=started, ended=ended, seconds=round(ended - started, 3),
                         metrics=metrics, error=None, fingerprint=plan.fingerprint, inputs=plan.inputs, reused=None)
    return metrics


def _run_recorded(run: RunDir, config: RunConfig, stage: Stage, context: StageContext, writer: bool) -> dict[str, Any]:
    """The stage's function; a failure or interruption is recorded before it propagates."""
    try:
        return stage.run(context)
    except Diverged as exc:  # training blew up: one line naming the stage, the step and the key to lower
        error = blowup_message(run, config, stage, exc)
        if writer:
            run.update_stage(stage.name, status="failed", error=error[:500])
        raise RunError(error) from None
    except BaseException as exc:  # KeyboardInterrupt (and SIGTERM, see cli.py) too: the stage is redone on resume
        if writer:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            run.update_stage(stage.name, status=status, error=f"{exc.__class__.__name__}: {exc}"[:500])
        raise


def blowup_message(run: RunDir, config: RunConfig, stage: Stage, exc: Diverged) -> str:
    """One line: which stage blew up, at which step, and the key to lower (the loop's own learning
    rate, else the learning rate among the stage's config keys)."""
    flat = flat_config(config_to_dict(config))
    rates = [k for k in flat if k.endswith(".lr") and any(k == d or k.startswith(d + ".") for d in stage.config_keys)]
    key = exc.key or (rates[0] if len(rates) == 1 else "")
    if key:
        fix = (f"lower {key} (now {flat[key]:g}), e.g. python -m pdiff run --out {run.path} "
               f"--set {key}={flat[key] / 10:g}")
    else:
        fix = (f"the inputs it read hold extreme values: check its settings ({', '.join(stage.config_keys)}) "
               f"or lower the learning rates of the stages before it")
    return f"{stage.name}: {exc}; nothing was saved as done: {fix}"


def _single_plan(run: RunDir, config: RunConfig, stage: Stage, device: torch.device, cache: dict[str, Any]) -> Plan:
    records = run.manifest().get("stages", {})
    fingerprints = {u: (records.get(u) or {}).get("fingerprint", "") for u in upstream(stage, pipeline_for(config))}
    data = data_identity(config, cache) if stage.uses_data else None
    files = zoo_files_identity(config, cache) if stage.uses_files else None
    inputs = stage_inputs(stage, config, device, fingerprints, data, files)
    return Plan(stage, inputs, stable_hash(inputs), "run", "asked for")


def _adopt(run: RunDir, plan: Plan, store: Store) -> bool:
    """Link a stage's artifacts from the store and record it as done; False if that failed."""
    record = store.adopt(plan.stage.name, plan.fingerprint, run.path)
    if record is None:
        return False
    now = time.time()
    run.update_stage(plan.stage.name, status="done", started=now, ended=now, seconds=record.get("seconds", 0.0),
                     metrics=record.get("metrics", {}), error=None, fingerprint=plan.fingerprint, inputs=plan.inputs,
                     reused="store")
    return True


def run_pipeline(path: str | Path, config: RunConfig, force: str | None = None,
                 report: StageProgress | None = None, until: str | None = None,
                 log: Callable[[str], None] | None = None, threads: int | None = None) -> RunDir:
    """Run every stage whose fingerprint does not match (up to `until`); matching ones are reused.

    `force` redoes that stage and every later one (bypassing the store); `log` receives the
    one-line plan; `threads` is each stage's thread count (None: the count `configure_threads`
    chose, else torch's setting; see core/threads.py). Under torchrun every rank runs this:
    training is data-parallel, sampling and evaluation are sharded, the cheap baselines and
    analysis run on rank 0, and only rank 0 writes.
    """
    distributed.setup()
    stages = pipeline_for(config)
    order = names(stages)
    forced = set(order[order.index(get_stage(force, stages).name):]) if force else set()
    last = order.index(get_stage(until, stages).name) if until else len(order) - 1
    cache: dict[str, Any] = {}
    device = resolve_device(config.device)  # an unavailable device fails before anything is written
    run = prepare_run(path, config, cache)
    writer = distributed.is_main()
    store = store_for(run.path) if distributed.current().world == 1 else None  # see store.py
    plans = plan_run(run, config, device, forced, store, cache)[: last + 1]
    if writer:
        manifest = run.manifest()
        manifest["device"] = str(device)
        choice = thread_settings.current()
        manifest["threads"] = choice.record() | ({"count": threads} if threads is not None else {})
        run.write_manifest(manifest)
        if log is not None:
            log(describe_plan(plans, len(order)))
    progress = ThrottledProgress(run, report, writer=writer)
    warm_up = _start_umap_warm_up(plans, config) if writer else None
    for plan in plans:
        name = plan.stage.name
        if plan.action == "reuse":
            continue
        if name == "analyse" and warm_up is not None:
            _finish(warm_up)
        if plan.action == "store" and store is not None and _adopt(run, plan, store):
            continue
        if writer or not plan.stage.main_only:
            run_stage(run, config, name, device, progress, plan, cache, threads)
        if writer and store is not None:
            record = run.stage(name)
            store.publish(name, plan.fingerprint, run.path, list(plan.stage.writes),
                          {"stage": name, "fingerprint": plan.fingerprint, "inputs": plan.inputs,
                           "metrics": record.get("metrics", {}), "seconds": record.get("seconds", 0.0)})
        distributed.barrier()  # later stages on every rank read what rank 0 wrote
    return run


def _start_umap_warm_up(plans: list[Plan], config: RunConfig) -> subprocess.Popen | None:
    """Compile UMAP's kernels into numba's cache in a low-priority process while the early stages
    train, when the analysis will need them and the cache is cold (a first run on a machine):
    the analysis then loads them in about a second instead of compiling for 20 s or more."""
    if not config.analysis.umap or not any(p.stage.name == "analyse" and p.action != "reuse" for p in plans):
        return None
    if umap_cache_is_warm():
        return None
    code = "import os; os.nice(10); from pdiff.judge.projection import warm_up; warm_up()"  # idle CPU time only
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    try:
        return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env)
    except OSError:  # no warm-up: the analysis compiles as it always did
        return None


def _finish(process: subprocess.Popen, timeout: float = 300.0) -> None:
    """Wait for the warm-up (it is usually long done); stop it if it hangs."""
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def load_run_config(run: RunDir) -> RunConfig:
    try:
        return config_from_dict(run.manifest()["config"])
    except (KeyError, TypeError):
        raise RunError(f"{run.path}/run.json has no config; the run directory is damaged") from None
