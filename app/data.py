"""Cached loaders: a run's files as numpy arrays, for the pages.

Array loaders are `st.cache_data` keyed on the run path plus each file's (mtime, size), so a
file rewritten by a running or resumed pipeline is read again, and an unchanged one never is.
`st.cache_resource` holds only objects nobody mutates (the diffusion schedule). Every loader
raises `RunError` (one line) for a missing or damaged file; pages turn that into a message.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
import torch

from app import launcher
from pdiff.core.artifacts import ANALYSIS, AUTOENCODER, BASE, BASELINES, DENOISER, DYNAMICS, EVALUATION, GENERATED, ZOO
from pdiff.core.config import DiffusionConfig, RunConfig, flat_config
from pdiff.core.errors import ConfigError, RunError
from pdiff.core.rundir import MANIFEST, PROGRESS, RunDir, list_runs, runs_root
from pdiff.export import export_bytes, export_state
from pdiff.generator.diffusion import build_process
from pdiff.generator.normalizer import Normalizer
from pdiff.judge import catalogue
from pdiff.judge.verdict import Verdict
from pdiff.pipeline.anatomy import Anatomy, anatomy
from pdiff.pipeline.estimate import from_other_runs, remaining
from pdiff.pipeline.latents import model_latents
from pdiff.pipeline.loaders import load_evaluation, load_zoo, model_groups
from pdiff.pipeline.report import MetricsTable, metrics_table
from pdiff.pipeline.runner import load_run_config
from pdiff.pipeline.status import stage_states
from pdiff.pipeline.table import ALL_STAGES, NOT_RESULTS, pipeline_of
from pdiff.zoo.params import ParamLayout

Arrays = dict[str, np.ndarray]


def stamp(path: Path) -> tuple[int, int] | None:
    """(mtime_ns, size) of a file, or None when it does not exist: part of every cache key."""
    try:
        info = path.lstat()  # a planted link is not followed, even for its size
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


def root() -> Path:
    return runs_root().resolve()


# --------------------------------------------------------------------------- raw files


@st.cache_data(show_spinner=False, max_entries=64)
def _load(run_path: str, name: str, key: tuple[int, int] | None) -> tuple[Arrays, dict[str, Any]]:
    tensors, meta = RunDir(run_path).load(name)
    return {k: v.numpy() for k, v in tensors.items()}, meta


def load(run: RunDir, name: str) -> tuple[Arrays, dict[str, Any]]:
    """A run's safetensors file as numpy arrays plus its metadata (cached)."""
    return _load(str(run.path), name, stamp(run.file(name)))


def manifest(run: RunDir) -> dict[str, Any]:
    data = run.manifest()
    if not isinstance(data, dict):
        raise RunError(f"{run.path}/run.json is damaged (not a JSON object)")
    return data


def config(run: RunDir) -> RunConfig:
    try:
        return load_run_config(run)
    except ConfigError as exc:
        raise RunError(f"{run.path}/run.json holds a config this code cannot read ({exc})") from None


def config_dict(run: RunDir) -> dict[str, Any]:
    return asdict(config(run))


# --------------------------------------------------------------------------- status


def stages(run: RunDir) -> list[dict[str, Any]]:
    """Every stage with status, seconds, metrics and, for the running one, progress (0..1).

    A stage the manifest calls "running" with no live process is shown as "stopped": the run
    was killed or interrupted and resumes there when launched again.
    """
    manifest_ = manifest(run)
    states = stage_states(run, manifest_)
    active = launcher.active_pid(run.path) is not None
    progress = run.progress() or {}
    out = []
    for stage in pipeline_of(manifest_.get("config")):
        name, state = stage.name, states[stage.name]
        s = dict(state.record or {})
        s["name"], s["status"], s["stale"] = name, state.status, state.stale
        if s["status"] == "running":
            if not active:
                s["status"] = "stopped"
            elif progress.get("stage") == name and progress.get("total") and _fresh(progress, s.get("started")):
                s["progress"] = min(1.0, progress["done"] / progress["total"])
                s["info"] = progress.get("info") or {}
            if s.get("started") and active:
                s["seconds"] = time.time() - s["started"]
        detail = [f"<b>{name}</b>: {s['status']}" + (f" (stale: {s['stale']})" if s["stale"] else ""),
                  f"writes {', '.join(stage.writes)}"]
        detail += [f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
                   for k, v in (s.get("metrics") or {}).items() if not isinstance(v, dict)]
        if s.get("error"):
            detail.append(str(s["error"])[:200])
        s["detail"] = "<br>".join(detail)
        out.append(s)
    return out


def _fresh(progress: dict[str, Any], started: float | None) -> bool:
    """progress.json was written by the stage's current attempt (not by an earlier, interrupted one
    that a resumed process has not overwritten yet)."""
    return not started or (progress.get("time") or 0.0) >= started


def run_summary(run: RunDir) -> str:
    """'done', 'running', 'partial' (resumable), 'failed' or 'damaged', for the run picker."""
    try:
        manifest_ = manifest(run)
    except RunError:
        return "damaged"
    stages_ = manifest_.get("stages", {})
    if launcher.active_pid(run.path) is not None:
        return "running"
    statuses = [(stages_.get(s.name) or {}).get("status", "pending") if isinstance(stages_.get(s.name), dict)
                else "pending" for s in pipeline_of(manifest_.get("config"))]
    if all(s == "done" for s in statuses):
        return "done"
    if "failed" in statuses:
        return "failed"
    return "partial"


def list_run_names() -> list[str]:
    return [r.name for r in list_runs(root())]


def done(run: RunDir, stage: str) -> bool:
    """The stage finished and its result is still current (not stale); False for a stage the run
    does not have (the generator's, in a run made with generate=false)."""
    state = stage_states(run, manifest(run)).get(stage)
    return state is not None and state.current


def has_stage(run: RunDir, stage: str) -> bool:
    """Whether the run's pipeline has `stage` (a run made with generate=false has no generator)."""
    return stage in stage_states(run, manifest(run))


def progress(run: RunDir) -> dict[str, Any] | None:
    return run.progress() if run.file(PROGRESS).exists() else None


# --------------------------------------------------------------------------- results


@st.cache_data(show_spinner=False, max_entries=32)
def _accuracy(run_path: str, key: tuple[int, int] | None) -> dict[str, np.ndarray]:
    return {g: a.numpy() for g, a in load_evaluation(RunDir(run_path)).accuracy.items()}


def accuracy(run: RunDir) -> dict[str, np.ndarray]:
    """group -> (N,) test accuracy (percent), in the evaluation's group order (zoo first)."""
    return _accuracy(str(run.path), stamp(run.file(EVALUATION)))


@st.cache_data(show_spinner=False, max_entries=32)
def _table(run_path: str, key: tuple) -> MetricsTable:
    return metrics_table(RunDir(run_path))


def table(run: RunDir) -> MetricsTable:
    """The run's one metrics table (pdiff.pipeline.report.metrics_table): the analysis scorecard while it
    is current, else accuracy only with a note saying which stage is stale."""
    return _table(str(run.path), (stamp(run.file(MANIFEST)), stamp(run.file(ANALYSIS)), stamp(run.file(EVALUATION))))


def scorecard(run: RunDir) -> dict[str, dict[str, Any]]:
    return table(run).rows


def verdict(run: RunDir) -> Verdict | None:
    """The run's answer to "new or copied?" (pdiff.judge.verdict, from the one metrics table and its
    ruler), or None while the analysis is not current."""
    current = table(run)
    return current.verdict() if current.complete else None


def test_resolution(run: RunDir) -> tuple[int, float] | None:
    """(test samples, points of accuracy one test sample is worth), from the evaluation's labels."""
    labels = load(run, EVALUATION)[0].get("labels")
    return None if labels is None or not len(labels) else (len(labels), 100.0 / len(labels))


def analysis(run: RunDir) -> tuple[Arrays, dict[str, Any]]:
    tensors, meta = load(run, ANALYSIS)
    groups, sizes = meta.get("groups"), meta.get("sizes")
    if not groups or not sizes or len(groups) != len(sizes) or "iou" not in tensors:
        raise RunError(f"{run.path}/{ANALYSIS} lacks its group list or IoU matrix; "
                       f"redo it with python -m pdiff analyse {run.path}")
    return tensors, meta


def group_arrays(run: RunDir, suffix: str) -> dict[str, np.ndarray]:
    """group -> analysis array `{group}.{suffix}` for every group that has it, in group order."""
    tensors, meta = analysis(run)
    return {g: tensors[f"{g}.{suffix}"] for g in meta["groups"] if f"{g}.{suffix}" in tensors}


@st.cache_data(show_spinner=False, max_entries=16)
def _params(run_path: str, key: tuple) -> dict[str, np.ndarray]:
    return {g: v.float().numpy() for g, v in model_groups(RunDir(run_path)).items()}


def params(run: RunDir) -> dict[str, np.ndarray]:
    """group -> (N, D) parameter vectors (zoo = training checkpoints, as the analysis indexes them)."""
    return _params(str(run.path), tuple(stamp(run.file(n)) for n in (ZOO, GENERATED, BASELINES)))


def zoo_labels(run: RunDir) -> dict[str, dict[str, list]]:
    """What is known about each checkpoint, to colour by: label -> group ("zoo", "fresh") -> one
    value per model, in the analysis' order. An imported zoo has its metadata columns (run, step
    and any label); a collected one its seed and step."""
    tensors, meta = load(run, ZOO)
    train = ~tensors["heldout"].astype(bool)
    records = {"zoo": meta.get("checkpoints"), "fresh": meta.get("fresh_checkpoints")}
    if isinstance(records["zoo"], list) and len(records["zoo"]) == int(train.sum()):
        columns = list(dict.fromkeys(k for rows in records.values() if isinstance(rows, list) for row in rows
                                     for k in row if k != "file"))
        return {c: {g: [row.get(c) for row in rows] for g, rows in records.items() if isinstance(rows, list)}
                for c in columns}
    out = {"step": {"zoo": tensors["steps"][train].tolist()}}
    if len(np.unique(tensors["seed"])) > 1:
        out["seed"] = {"zoo": tensors["seed"][train].tolist()}
    return out


@st.cache_data(show_spinner=False, max_entries=16)
def _latents(run_path: str, key: tuple) -> dict[str, np.ndarray]:
    run = RunDir(run_path)
    return {g: v.numpy() for g, v in model_latents(run, config(run), torch.device("cpu")).items()}


def latents(run: RunDir) -> dict[str, np.ndarray]:
    """group -> (N, L) standardized latents, as the analysis judged them (generated: the sampled ones)."""
    return _latents(str(run.path), tuple(stamp(run.file(n)) for n in (ZOO, AUTOENCODER, GENERATED, BASELINES)))


def predictions(run: RunDir) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(group -> (N, S) predicted classes, (S,) labels) from the evaluation."""
    tensors, meta = load(run, EVALUATION)
    groups = meta.get("groups") or []
    if "labels" not in tensors or any(f"{g}.predictions" not in tensors for g in groups):
        raise RunError(f"{run.path}/{EVALUATION} lacks predictions; redo it with --force evaluate")
    return {g: tensors[f"{g}.predictions"] for g in groups}, tensors["labels"]


@st.cache_data(show_spinner=False, max_entries=16)
def _per_model(run_path: str, key: tuple) -> dict[str, dict[str, np.ndarray]]:
    run = RunDir(run_path)
    tensors, meta = RunDir(run_path).load(ANALYSIS)
    zoo = load_zoo(run)
    steps = {"zoo": zoo["steps"][~zoo["heldout"]], "heldout": zoo["steps"][zoo["heldout"]]}
    if "fresh.steps" in zoo:
        steps["fresh"] = zoo["fresh.steps"]
    accuracy = load_evaluation(run).accuracy
    values = catalogue.per_model(accuracy, tensors, steps, meta.get("ruler"))
    return {column: {g: v.numpy() for g, v in groups.items()} for column, groups in values.items()}


def per_model(run: RunDir) -> dict[str, dict[str, np.ndarray]]:
    """column -> group -> (N,) one value per model (pdiff.judge.catalogue): what the projector colours by."""
    return _per_model(str(run.path), (stamp(run.file(ANALYSIS)), stamp(run.file(EVALUATION)), stamp(run.file(ZOO))))


@st.cache_data(show_spinner=False, max_entries=16)
def _anatomy(run_path: str, key: tuple) -> Anatomy:
    run = RunDir(run_path)
    return anatomy(run, config(run))


def run_anatomy(run: RunDir) -> Anatomy:
    """The run's sizes, end to end (pdiff.pipeline.anatomy): what the pipeline diagram shows."""
    return _anatomy(str(run.path), tuple(stamp(run.file(n)) for n in (MANIFEST, BASE, ZOO, GENERATED)))


def layout_segments(run: RunDir) -> list[tuple[str, int, int]]:
    """(tensor name, start, stop) of each target tensor in the flat parameter vector."""
    layout = load(run, ZOO)[1].get("layout")
    if not layout:
        raise RunError(f"{run.path}/{ZOO} has no layout metadata; redo it with --force collect")
    return [(s.name, s.start, s.stop) for s in ParamLayout.from_json(layout).segments]


# --------------------------------------------------------------------------- diffusion teaching


@st.cache_resource(show_spinner=False, max_entries=8)
def diffusion_process(settings: DiffusionConfig):
    """The run's forward process, DDPM's noise schedule or flow matching's path (never mutated,
    shared by all sessions)."""
    return build_process(settings)


def normalizer(run: RunDir):
    """The run's normalizer (fitted on the zoo in the autoencoder stage)."""
    state = load(run, AUTOENCODER)[0]
    if "normalizer.mean" not in state or "normalizer.std" not in state:
        raise RunError(f"{run.path}/{AUTOENCODER} lacks the normalizer; redo it with --force autoencoder")
    return Normalizer.from_state({"mean": torch.from_numpy(state["normalizer.mean"]),
                                  "std": torch.from_numpy(state["normalizer.std"])})


def normalized(run: RunDir, vectors: np.ndarray) -> np.ndarray:
    """(N, D) raw parameters -> the normalized values the autoencoder sees."""
    return normalizer(run).normalize(torch.from_numpy(np.asarray(vectors)).double()).float().numpy()


def forward_noising(run: RunDir, index: int, t: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Zoo vector `index`, normalized with the run's normalizer (x0), noised to step t with fixed
    noise (x_t = q_sample(x0, t, eps)), the weights of x0 and of the noise at every t, and the
    signal-to-noise ratio (their squared ratio)."""
    process = diffusion_process(config(run).diffusion)
    x0 = torch.from_numpy(normalized(run, params(run)["zoo"][index][None])[0])
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    xt = process.q_sample(x0[None], torch.tensor([t]), noise[None])[0]
    signal, noise_weight = (w.double() for w in process.path_weights())
    return {"x0": x0.numpy(), "xt": xt.numpy(), "snr": (signal**2 / noise_weight**2).numpy(),
            "signal": signal.numpy(), "noise": noise_weight.numpy()}


def trajectory(run: RunDir) -> tuple[np.ndarray, np.ndarray]:
    """(P, M, D) decoded x0-predictions of the tracked samples and (P,) their timesteps."""
    tensors = load(run, GENERATED)[0]
    if "trajectory" not in tensors or "trajectory_steps" not in tensors:
        raise RunError(f"{run.path}/{GENERATED} has no sampling trajectory; redo it with --force sample")
    return tensors["trajectory"], tensors["trajectory_steps"]


# --------------------------------------------------------------------------- training curves and time


def losses(run: RunDir) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Loss curves, label -> (step, loss): the stored curves of finished autoencoder and diffusion
    stages, and whatever the running (or last) invocation reported in progress.json (collect's
    classifier and checkpoint phases included), so curves grow while a run trains."""
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    history = (progress(run) or {}).get("history") or {}
    started = {label: (curve or {}).get("started") or 0.0 for label, curve in history.items()}
    for label, curve in sorted(history.items(), key=lambda kv: started[kv[0]]):  # the order they trained in
        points = np.asarray([p for p in (curve or {}).get("points", []) if len(p) == 3], dtype=float)
        if len(points):
            curves[label] = (points[:, 0], points[:, 2])
    for stage, name in (("autoencoder", AUTOENCODER), ("diffusion", DENOISER)):
        if not run.file(name).exists() or not done(run, stage):
            continue
        tensors, meta = load(run, name)
        if "loss" in tensors and len(tensors["loss"]):
            every = int(meta.get("loss_every") or 1)
            steps = np.arange(len(tensors["loss"])) * every + 1
            curves[stage] = (steps, tensors["loss"])
    order = {s.name: i for i, s in enumerate(ALL_STAGES)}
    return dict(sorted(curves.items(), key=lambda kv: order.get(kv[0].split(":")[0], len(order))))


@st.cache_data(show_spinner=False, max_entries=32, ttl=60)
def _other_manifests(root_path: str, exclude: str) -> list[dict[str, Any]]:
    out = []
    for other in list_runs(Path(root_path)):
        if str(other.path) == exclude:
            continue
        try:
            manifest_ = other.manifest()
        except RunError:
            continue
        if isinstance(manifest_, dict):
            out.append(manifest_)
    return out


def estimates(run: RunDir) -> dict[str, Any]:
    """stage -> pdiff.pipeline.estimate.Estimate: time left for the running stage (from its progress),
    expected time for each stage not run yet (from finished runs under the same root)."""
    manifest_ = manifest(run)
    out: dict[str, Any] = dict(from_other_runs(manifest_, _other_manifests(str(root()), str(run.path))))
    current = progress(run) or {}
    stage = current.get("stage")
    record = (manifest_.get("stages") or {}).get(stage) or {}
    if stage and record.get("status") == "running" and _fresh(current, record.get("started")):
        phase_start = _phase_start(current, record.get("started"))
        left = remaining(current, phase_start, time.time())
        if left is not None:
            out[stage] = left
    return out


def _phase_start(current: dict[str, Any], started: float | None) -> float | None:
    """When the current phase began (progress.json's history records it for phases that report
    a loss, e.g. collect's classifier, then its checkpoints); else when the stage began."""
    phase = (current.get("info") or {}).get("phase")
    curve = (current.get("history") or {}).get(f"{current.get('stage')}: {phase}" if phase else current.get("stage"))
    return (curve or {}).get("started") or started


# --------------------------------------------------------------------------- export


@st.cache_data(show_spinner=False, max_entries=8)
def _export(run_path: str, group: str, index: int, key: tuple) -> bytes:
    return export_bytes(export_state(RunDir(run_path), group, index))


def export_file(run: RunDir, group: str, index: int) -> bytes:
    """Model `index` of `group` as a full classifier state dict in safetensors (pdiff.export)."""
    names = (BASE, ZOO, GENERATED, BASELINES, EVALUATION)
    return _export(str(run.path), group, int(index), tuple(stamp(run.file(n)) for n in names))


def dynamics(run: RunDir) -> list[dict[str, Any]]:
    """Each denoiser snapshot's record (pdiff.judge.dynamics): step, accuracy, ruler, answer, fidelity."""
    records = load(run, DYNAMICS)[1].get("snapshots")
    if not isinstance(records, list):
        raise RunError(f"{run.path}/{DYNAMICS} has no snapshot records; redo it with --force dynamics")
    return records


def zoo_size_siblings(run: RunDir) -> list[tuple[int, int, str, list[dict[str, Any]]]]:
    """(K, seed, run name, records) of the runs under the runs root whose config differs from this
    run's at most in the zoo size and the seed, and whose training dynamics are done: a K grid."""
    mine = _without(config_dict(run))
    out = []
    for other in list_runs(root()):
        try:
            theirs = config_dict(other)
            if _without(theirs) != mine or not done(other, "dynamics"):
                continue
            out.append((int(theirs["collect"]["num_checkpoints"]), int(theirs["seed"]), other.name, dynamics(other)))
        except (RunError, KeyError, TypeError, ValueError):
            continue  # a damaged or unrelated run is simply not part of the grid
    return sorted(out)


def _without(config: dict[str, Any]) -> dict[str, Any]:
    flat = flat_config(config)
    return {k: v for k, v in flat.items() if k not in ("seed", "collect.num_checkpoints", *NOT_RESULTS)}
