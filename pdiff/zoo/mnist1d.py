"""MNIST-1D (Greydanus 2020, arXiv 2011.14439): a small embedded dataset with headroom.

`digits` is at the ceiling (about ten wrong test samples per model), so wrong-prediction IoU
cannot tell models apart there. MNIST-1D's ten 1-D digit templates, padded, scaled, translated,
sheared and noised into 40-sample signals, leave a small CNN at 80-95 %: hundreds of wrong
samples per model, enough for similarity metrics to resolve.

The data is generated procedurally by the `mnist1d` PyPI package, never downloaded: only
`mnist1d.data.make_dataset` is called, with `GENERATION_ARGS` (the package's `get_dataset_args()`
defaults without its download `url`). Its download and pickle helpers (`get_dataset`,
`to_pickle`) are never used. The generated arrays are cached as safetensors under
`data.root` (`mnist1d-<hash of the arguments>.safetensors`), so the package is imported (about
1 s: it pulls in matplotlib and requests) and run (about 1 s) only on first use.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import random
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save

from ..core.config import DataConfig
from ..core.errors import ConfigError
from ..core.rundir import atomic_write_bytes
from .datasets import Dataset

# Exactly what `make_dataset` is called with: 5000 signals of 40 samples, the first 80 %
# (4000) train and the rest (1000) test, seed 42. Written out rather than read from the
# package so that a change of its defaults cannot silently change the data under a cached name.
GENERATION_ARGS: dict[str, Any] = {
    "num_samples": 5000,
    "train_split": 0.8,
    "template_len": 12,
    "padding": [36, 60],
    "scale_coeff": 0.4,
    "max_translation": 48,
    "corr_noise_scale": 0.25,
    "iid_noise_scale": 2e-2,
    "shear_scale": 0.75,
    "shuffle_seq": False,
    "final_seq_length": 40,
    "seed": 42,
}
NUM_CLASSES = 10
ARRAYS = ("x_train", "y_train", "x_test", "y_test")  # keys of the cache file


def args_hash(args: dict[str, Any] = GENERATION_ARGS) -> str:
    """Short fingerprint of the generation arguments; it names the cache file."""
    return hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:8]


def cache_path(config: DataConfig, args: dict[str, Any] = GENERATION_ARGS) -> Path:
    return Path(config.root).expanduser() / f"mnist1d-{args_hash(args)}.safetensors"


@contextlib.contextmanager
def _global_rng_kept() -> Iterator[None]:
    """`make_dataset` reseeds Python's and NumPy's global generators; put them back afterwards,
    so that loading data never changes the random numbers a run draws later."""
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def generate(args: dict[str, Any] = GENERATION_ARGS) -> dict[str, np.ndarray]:
    """Run the package's generator: x (N, 40) float64, y (N,) int64 per split."""
    from mnist1d.data import make_dataset  # lazy: the package imports matplotlib and requests
    from mnist1d.utils import ObjectView

    with _global_rng_kept():
        data = make_dataset(ObjectView(dict(args)))  # a copy: make_dataset reads attributes only
    return {"x_train": data["x"], "y_train": data["y"], "x_test": data["x_test"], "y_test": data["y_test"]}


def write_cache(path: Path, arrays: dict[str, np.ndarray], args: dict[str, Any]) -> None:
    """Safetensors (no pickle), written atomically; the arguments ride along as metadata."""
    clean = {k: np.ascontiguousarray(arrays[k]) for k in ARRAYS}
    atomic_write_bytes(path, save(clean, metadata={"mnist1d_args": json.dumps(args, sort_keys=True)}))


def read_cache(path: Path, args: dict[str, Any]) -> dict[str, np.ndarray]:
    """The cached arrays; anything unreadable or inconsistent is a one-line `ConfigError`."""
    try:
        with safe_open(path, framework="np") as handle:
            metadata = handle.metadata() or {}
            arrays = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 (the handle is not iterable)
    except (SafetensorError, OSError, ValueError) as exc:
        raise _damaged(path, f"unreadable: {exc.__class__.__name__}") from None
    problem = _cache_problem(arrays, metadata, args)
    if problem:
        raise _damaged(path, problem)
    return arrays


def _cache_problem(arrays: dict[str, np.ndarray], metadata: dict[str, str], args: dict[str, Any]) -> str:
    """What is wrong with a cache's contents, or "" when it is what `generate(args)` returns."""
    if metadata.get("mnist1d_args") != json.dumps(args, sort_keys=True):
        return "generated with other arguments"
    missing = [k for k in ARRAYS if k not in arrays]
    if missing:
        return f"missing {', '.join(missing)}"
    n_total = args["num_samples"] // NUM_CLASSES * NUM_CLASSES  # make_dataset's whole samples per class
    n_train = int(n_total * args["train_split"])
    expected = {"x_train": (n_train, args["final_seq_length"]), "y_train": (n_train,),
                "x_test": (n_total - n_train, args["final_seq_length"]), "y_test": (n_total - n_train,)}
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            return f"{key} has shape {arrays[key].shape}, expected {shape}"
    for key in ("y_train", "y_test"):
        if arrays[key].dtype != np.int64 or arrays[key].min() < 0 or arrays[key].max() >= NUM_CLASSES:
            return f"{key} is not int64 labels in 0..{NUM_CLASSES - 1}"
    if not all(np.isfinite(arrays[k]).all() for k in ("x_train", "x_test")):
        return "signals hold non-finite values"
    return ""


def _damaged(path: Path, reason: str) -> ConfigError:
    return ConfigError(f"MNIST-1D cache {path} is damaged ({reason}); delete it and it will be regenerated")


def load_arrays(config: DataConfig, args: dict[str, Any] = GENERATION_ARGS) -> dict[str, np.ndarray]:
    """The generated arrays, from the cache when present, else generated and cached."""
    path = cache_path(config, args)
    if path.exists():
        return read_cache(path, args)
    arrays = generate(args)
    try:
        write_cache(path, arrays, args)
    except OSError as exc:  # a read-only data folder costs a regeneration next time, nothing more
        warnings.warn(f"could not cache MNIST-1D at {path} ({exc.__class__.__name__}); "
                      f"it will be generated again next time", stacklevel=2)
    return arrays


def load_mnist1d(config: DataConfig) -> Dataset:
    """MNIST-1D as (N, 1, 40) float32 signals, z-scored with the train split's mean and std
    (one scalar each, as `digits` does), and int64 labels 0..9."""
    arrays = load_arrays(config)
    x_train, x_test = arrays["x_train"].astype(np.float32), arrays["x_test"].astype(np.float32)
    mean, std = x_train.mean(), x_train.std()
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    return Dataset(torch.from_numpy(x_train[:, None, :]), torch.from_numpy(arrays["y_train"].astype(np.int64)),
                   torch.from_numpy(x_test[:, None, :]), torch.from_numpy(arrays["y_test"].astype(np.int64)),
                   num_classes=NUM_CLASSES)
