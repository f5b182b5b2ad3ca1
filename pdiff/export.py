"""Take one model out of a run: the full classifier state dict, ready for `load_state_dict`.

Every model of a run (a zoo checkpoint, a generated model, a baseline) is stored as a flat vector
of the target parameters only; the rest of the network is the run's frozen base. `export_state`
writes one vector into a copy of the base state dict, so the result is a complete classifier.
`save_export` writes it as safetensors (no pickle) with metadata saying how to rebuild the
network, and `load_exported` rebuilds it. `check_export` evaluates the exported classifier with a
plain forward pass on the run's test split, to confirm it scores what the run recorded.

    python -m pdiff export runs/digits --group generated --index 3 --out model.safetensors
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from .core.artifacts import BASE
from .core.errors import RunError
from .core.rundir import RunDir, atomic_write_bytes
from .pipeline.loaders import load_evaluation, load_layout, model_groups
from .pipeline.runner import load_run_config
from .zoo.classifiers import build_classifier
from .zoo.datasets import load_dataset
from .zoo.params import clamp_variances

FORMAT = "pdiff-classifier/1"


@dataclass(frozen=True)
class Exported:
    state: dict[str, torch.Tensor]  # the classifier's full state dict
    meta: dict[str, Any]  # arch, input_shape, num_classes, group, index, recorded accuracy, run


def export_state(run: RunDir, group: str, index: int) -> Exported:
    """Model `index` of `group` as a full state dict (the run's base with the target filled in).

    Indices are those of the app and the analysis: "zoo" counts the training checkpoints only,
    "heldout" the held-out ones. A one-line RunError names the valid groups or the valid range.
    """
    groups = model_groups(run)
    if group not in groups:
        raise RunError(f"{run.path} has no group {group!r}; its groups are: {', '.join(groups)}")
    vectors = groups[group]
    if not -len(vectors) <= index < len(vectors):
        raise RunError(f"{group} has {len(vectors)} models in {run.path}; --index must be 0..{len(vectors) - 1}")
    index %= len(vectors)
    base, base_meta = run.load(BASE)
    layout = load_layout(run)
    state = {k: v.clone() for k, v in base.items()}
    vector = clamp_variances(vectors[index][None].float(), layout)  # as the evaluation saw it
    for name, tensor in layout.unflatten(vector).items():  # (1, *shape) per tensor
        if name not in state:
            raise RunError(f"{run.path}/{BASE} lacks the target tensor {name}; the run is damaged")
        state[name] = tensor[0].to(state[name].dtype).contiguous()
    manifest = run.manifest()
    config = manifest.get("config", {}) if isinstance(manifest, dict) else {}
    meta = {"format": FORMAT, "arch": (config.get("classifier") or {}).get("arch"),
            "input_shape": base_meta.get("input_shape"), "num_classes": base_meta.get("num_classes"),
            "dataset": (config.get("data") or {}).get("name"), "group": group, "index": index,
            "target": layout.names, "recorded_accuracy": recorded_accuracy(run, group, index),
            "run": str(run.path)}
    return Exported(state, meta)


def recorded_accuracy(run: RunDir, group: str, index: int) -> float | None:
    """The test accuracy (percent) the run's evaluation recorded for this model, if evaluated."""
    try:
        accuracy = load_evaluation(run).accuracy
    except RunError:
        return None
    values = accuracy.get(group)
    return None if values is None else float(values[index])


def export_bytes(exported: Exported) -> bytes:
    """The safetensors file of an export (what `save_export` writes and the app offers)."""
    return save({k: v.contiguous() for k, v in exported.state.items()},
                metadata={"pdiff": json.dumps(exported.meta)})


def save_export(run: RunDir, group: str, index: int, out: str | Path) -> Exported:
    """Write model `index` of `group` to `out` (safetensors, atomically); returns what was written."""
    exported = export_state(run, group, index)
    atomic_write_bytes(Path(out), export_bytes(exported))
    return exported


def read_export(path: str | Path) -> Exported:
    """An exported file's state dict and metadata."""
    path = Path(path)
    if not path.exists():
        raise RunError(f"{path} does not exist")
    state = load_file(path)
    with safe_open(path, framework="pt") as handle:
        meta = json.loads((handle.metadata() or {}).get("pdiff", "{}"))
    return Exported(state, meta)


def load_exported(path: str | Path) -> torch.nn.Module:
    """Rebuild the classifier an exported file describes and load its weights (eval mode)."""
    exported = read_export(path)
    meta = exported.meta
    if meta.get("format") != FORMAT:
        raise RunError(f"{path} is not a pdiff classifier export (format {meta.get('format')!r})")
    model = build_classifier(meta["arch"], tuple(meta["input_shape"]), meta["num_classes"])
    model.load_state_dict(exported.state)
    return model.eval()


@torch.no_grad()
def check_export(run: RunDir, path: str | Path) -> float:
    """Test accuracy (percent) of an exported classifier on the run's test split, by a plain
    forward pass over the whole network (independent of the batched evaluation)."""
    model = load_exported(path)
    dataset = load_dataset(load_run_config(run).data)
    correct = 0
    for start in range(0, len(dataset.y_test), 1024):
        logits = model(dataset.x_test[start:start + 1024])
        correct += int((logits.argmax(-1) == dataset.y_test[start:start + 1024]).sum())
    return 100.0 * correct / len(dataset.y_test)
