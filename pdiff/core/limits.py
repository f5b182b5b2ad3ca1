"""Sizes with bounds, checked before a run starts, so a typo fails in one line, not in a stage.

Two checks, both before `run.json` is written (so a refused size never freezes into a run):

- `check_bounds(config)`, part of `config.validate`: every size key has an upper bound far above
  any sensible value (a typo such as `sample.num_models=1000000000` is refused, a big GPU run is
  not), every float is finite, seeds fit the random generators, channel lists are positive.
- `check_memory(config, dataset)`, called by the pipeline when it prepares a run: an estimate of
  the largest arrays a run holds at once (parameter vectors of every model, test predictions,
  the IoU matrix, bootstrap resamples, training activations) from the sizes and the target's
  parameter count D, refused when it exceeds this machine's memory. It is a lower bound of the
  real need, so it refuses only what cannot fit.
"""
from __future__ import annotations

import itertools
import math
import os
from dataclasses import fields, is_dataclass
from typing import Any

from .errors import ConfigError

K, M = 1_000, 1_000_000

# key -> the largest accepted value (the lower bounds are in config.validate).
UPPER: dict[str, int] = {
    "seed": 2**32 - 1,  # NumPy's seed range; stage seeds are derived from it
    "data.train_subset": 1_000 * M, "data.test_subset": 1_000 * M,
    "classifier.epochs": 100 * K, "classifier.batch_size": 64 * 1024,
    "collect.num_checkpoints": 100 * K, "collect.steps_per_checkpoint": 100 * K, "collect.heldout_every": 100 * K,
    "collect.seeds": 1_000, "collect.fresh": 100 * K,
    "autoencoder.kernel": 255, "autoencoder.latent_dim": 64 * 1024, "autoencoder.steps": 100 * M,
    "autoencoder.batch_size": 64 * 1024,
    "diffusion.timesteps": 100 * K, "diffusion.kernel": 255, "diffusion.time_dim": 8 * 1024,
    "diffusion.width": 64 * 1024, "diffusion.depth": 256,
    "diffusion.steps": 100 * M, "diffusion.batch_size": 64 * 1024, "diffusion.snapshots": 64,
    "sample.num_models": 100 * K, "sample.steps": 100 * K, "sample.trajectory_models": 1_000,
    "sample.trajectory_points": 1_000,
    "baselines.num_models": 100 * K, "baselines.average_m": 100 * K,
    "evaluate.chunk_size": 100 * K, "evaluate.batch_size": 100 * M,
    "analysis.umap_neighbors": 1_000, "analysis.bootstrap": 100 * K, "analysis.snapshot_models": 10 * K,
    "analysis.snapshot_steps": 100 * K,
}
CHANNEL_KEYS = ("autoencoder.channels", "autoencoder.hidden", "diffusion.channels")
MAX_CHANNELS, MAX_LAYERS = 8 * 1024, 16
MAX_SIGMAS = 32  # each sigma is a baseline group of baselines.num_models models


def _leaves(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(value):
            out |= _leaves(value, f"{prefix}{f.name}.")
        else:
            out[f"{prefix}{f.name}"] = value
    return out


def check_bounds(config: Any) -> None:
    """Raise a one-line ConfigError for a size above its bound, a non-finite float, a bad list."""
    values = _leaves(config)
    for key, value in values.items():
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if isinstance(item, float) and not math.isfinite(item):
                raise ConfigError(f"config key {key!r} must be a finite number, got {item!r}")
    for key, bound in UPPER.items():
        if values[key] > bound:
            raise ConfigError(f"config key {key!r} is {values[key]:,}, above its limit of {bound:,}; "
                         f"lower it (limits guard against typos: see pdiff/limits.py)")
    if values["seed"] < 0:
        raise ConfigError(f"config key 'seed' must be >= 0, got {values['seed']}")
    for key in CHANNEL_KEYS:
        channels = values[key]
        if len(channels) > MAX_LAYERS:
            raise ConfigError(f"config key {key!r} has {len(channels)} layers, above the limit of {MAX_LAYERS}")
        if any(c < 1 or c > MAX_CHANNELS for c in channels):
            raise ConfigError(f"config key {key!r} needs channel counts from 1 to {MAX_CHANNELS:,}, got {list(channels)}")
    for key in ("baselines.noise_sigmas", "baselines.relative_sigmas"):
        if len(values[key]) > MAX_SIGMAS:
            raise ConfigError(f"config key {key!r} has {len(values[key])} entries, above the limit of {MAX_SIGMAS}")
        if any(s < 0 for s in values[key]):
            raise ConfigError(f"config key {key!r} needs sigmas >= 0, got {list(values[key])}")


# --------------------------------------------------------------------------- memory


def memory_bytes() -> int | None:
    """This machine's physical memory, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def estimates(config: Any, dim: int, n_test: int, n_classes: int) -> list[tuple[int, str, str]]:
    """(bytes, what, keys to lower) of the largest allocations, per stage, from the sizes alone."""
    c = config
    k, n = c.collect.num_checkpoints, c.sample.num_models
    b = c.baselines
    groups = (len(b.noise_sigmas) + len(b.relative_sigmas) + 3) if b.enabled else 0  # + averaged, gaussian, decoder
    models = 3 * k + c.collect.fresh + n + groups * b.num_models  # zoo, AE reconstructions, copies, fresh SGD, ...
    biggest_group = max(k, n, b.num_models if b.enabled else 0)
    f32, f64, i64 = 4, 8, 8
    ae = c.autoencoder
    padded = -(-dim // 2 ** len(ae.channels)) * 2 ** len(ae.channels)
    reduced = padded // 2 ** len(ae.channels)
    d = c.diffusion
    return [
        (models * dim * f32 * 2 + models * dim * f64 * 3,
         f"the parameter vectors of {models:,} models (D={dim:,}) in evaluation and analysis",
         "sample.num_models, baselines.num_models, collect.num_checkpoints"),
        (models * n_test * (i64 + 2) + groups * n_test * n_classes * f32,
         f"the test predictions of {models:,} models on {n_test:,} samples",
         "sample.num_models, baselines.num_models, collect.num_checkpoints"),
        (models * models * (3 * f64 + f32) + models * n_test * 2 * f32,
         f"the IoU matrix of {models:,} x {models:,} models",
         "sample.num_models, baselines.num_models, collect.num_checkpoints"),
        (c.analysis.bootstrap * biggest_group * (i64 + f64),
         f"{c.analysis.bootstrap:,} bootstrap resamples of {biggest_group:,} models", "analysis.bootstrap"),
        (c.sample.trajectory_points * c.sample.trajectory_models * dim * f32 * 3,
         "the denoising trajectory", "sample.trajectory_points, sample.trajectory_models"),
        (ae.batch_size * max(ae.channels) * padded * f32 * 3 * len(ae.channels)
         + ae.latent_dim * ae.channels[-1] * reduced * f32 * 2 * 4 if ae.arch == "conv"
         else _mlp_bytes([dim, *ae.hidden, ae.latent_dim], ae.batch_size),
         "the autoencoder's activations and weights",
         "autoencoder.batch_size, autoencoder.channels, autoencoder.hidden, autoencoder.latent_dim"),
        (d.batch_size * max(d.channels) * ae.latent_dim * f32 * 3 * 2 * len(d.channels) if d.denoiser == "conv"
         else d.batch_size * d.width * f32 * 6 * d.depth + d.width * d.width * f32 * 4 * 2 * d.depth,
         "the denoiser's activations and weights",
         "diffusion.batch_size, diffusion.channels, diffusion.width, diffusion.depth, autoencoder.latent_dim"),
    ]


def _mlp_bytes(widths: list[int], batch: int) -> int:
    """Encoder and mirrored decoder: weights with AdamW's two moments and a gradient (x4), and
    the batch's activations kept for backward (x3), both directions (x2)."""
    weights = sum(a * b for a, b in itertools.pairwise(widths))
    return 2 * 4 * (4 * weights + 3 * batch * sum(widths))


def check_memory(config: Any, dim: int, n_test: int, n_classes: int, available: int | None = None) -> None:
    """Refuse a config whose largest estimated allocation exceeds this machine's memory."""
    available = available if available is not None else memory_bytes()
    if not available:
        return
    need, what, keys = max(estimates(config, dim, n_test, n_classes))
    if need > available:
        raise ConfigError(f"this config needs at least {need / 2**30:,.1f} GiB for {what}, more than this machine's "
                     f"{available / 2**30:,.1f} GiB of memory; lower {keys}")
