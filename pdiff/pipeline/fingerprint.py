"""Fingerprints: short hashes of exactly what a stage consumed.

A stage's fingerprint hashes its declared config values, the fingerprints of the stages whose
artifacts it reads, the digests of the code it runs (contract.code_version), the kind of device, and for stages that touch data the
content of the dataset (its tensors, not its name) and the classifier's identity. Two runs, or
two invocations, whose fingerprints agree computed the same thing, so a finished stage with a
matching fingerprint is reused and any other is redone.
"""
from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path
from typing import Any

import torch

from ..core.config import RunConfig, config_to_dict, flat_config
from ..core.registry import CLASSIFIERS
from ..zoo.checkpoints import files_digest, find_checkpoints
from ..zoo.classifiers import build_classifier
from ..zoo.datasets import Dataset, load_dataset
from ..zoo.metadata import metadata_file
from .contract import Stage, covers
from .table import pipeline_for, upstream


def stable_hash(value: Any, length: int = 16) -> str:
    """Hex digest of a JSON-able value, independent of dict order."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def tensor_digest(*tensors: torch.Tensor) -> str:
    """Digest of tensors' dtypes, shapes and bytes (blake2b: about 1 GB/s, so CIFAR hashes in a second)."""
    digest = hashlib.blake2b(digest_size=16)
    for tensor in tensors:
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{data.dtype}{tuple(data.shape)}".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def dataset_digest(dataset: Dataset) -> str:
    """The dataset's content: its splits, the class count and the augmentation's identity."""
    augment = dataset.augment
    augment_name = f"{augment.__module__}.{getattr(augment, '__qualname__', type(augment).__name__)}" if augment else ""
    tensors = tensor_digest(dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test,
                            *[x for x in (dataset.x_val, dataset.y_val) if x is not None])
    return stable_hash({"tensors": tensors, "classes": dataset.num_classes, "augment": augment_name})


def classifier_identity(arch: str, input_shape: tuple[int, ...], num_classes: int) -> str:
    """What the classifier is: its module structure (types, sizes, parameter names and shapes)
    and, where Python can see it, the source of its factory. A factory re-registered under the
    same name with other layers or other code gets another identity."""
    factory = CLASSIFIERS.get(arch)
    model = build_classifier(arch, input_shape, num_classes)
    shapes = [(name, list(p.shape)) for name, p in model.state_dict().items()]
    try:
        source = inspect.getsource(factory)
    except (OSError, TypeError):  # defined where Python keeps no source: the structure must do
        source = ""
    return stable_hash({"structure": repr(model), "shapes": shapes, "source": source,
                        "factory": f"{getattr(factory, '__module__', '')}.{getattr(factory, '__qualname__', '')}"})


def stage_inputs(stage: Stage, config: RunConfig, device: torch.device, fingerprints: dict[str, str],
                 data: dict[str, str] | None, files: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything `stage` consumes, as JSON: the fingerprint is the hash of this."""
    flat = flat_config(config_to_dict(config))
    keys = {k: v for k, v in flat.items() if covers(stage.config_keys, k)}
    inputs: dict[str, Any] = {"stage": stage.name, "code": stage.code, "config": keys,
                              "upstream": {u: fingerprints[u] for u in upstream(stage, pipeline_for(config))},
                              "device": device.type}
    if stage.uses_data:
        inputs |= data or {}
    if stage.uses_files:
        inputs |= files or {}
    return inputs


def zoo_files_identity(config: RunConfig, cache: dict[str, Any]) -> dict[str, str]:
    """The content of an imported zoo: its checkpoint files and metadata file, names and bytes
    (hashed once per invocation and kept in `cache`)."""
    if "zoo_files" not in cache:
        folder = Path(config.zoo.dir).expanduser()
        paths = find_checkpoints(folder)
        extra = metadata_file(folder)
        cache["zoo_files"] = {"files": files_digest(paths + ([extra] if extra else []), folder)}
    return cache["zoo_files"]


def data_identity(config: RunConfig, cache: dict[str, Any]) -> dict[str, str]:
    """The dataset's content digest and the classifier's identity (the dataset is loaded once
    and kept in `cache` for the stages of this invocation)."""
    if "dataset" not in cache:
        cache["dataset"] = load_dataset(config.data)
    dataset = cache["dataset"]
    return {"data": dataset_digest(dataset),
            "classifier": classifier_identity(config.classifier.arch, dataset.input_shape, dataset.num_classes)}
