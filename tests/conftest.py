"""Shared test fixtures: one tiny finished run per session, and small configs for pipeline tests.

`tiny_run` is a real end-to-end run of the default preset with the step counts turned down
(about 10 s of CPU on the 2-core dev machine): enough for the generated models to be far above
chance on digits, small enough to build once per session and share between test files. Tests
must not modify it; copy it first (`copy_run`) to damage or extend it.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Tiny models gain nothing from intra-op threads, and on a shared, loaded machine two OpenMP
# threads per process spin against each other (measured: 10x slower than one thread).
torch.set_num_threads(int(os.environ.get("PDIFF_TEST_THREADS", "1")))

# The tiny end-to-end run (default preset, digits, small CNN, last BN + head: 394 floats).
TINY_OVERRIDES = {
    "device": "cpu",
    "collect.num_checkpoints": 40,
    "classifier.epochs": 10,
    "autoencoder.steps": 200,
    "diffusion.steps": 300,
    "diffusion.timesteps": 200,
    "sample.num_models": 20,
    "baselines.num_models": 10,
    "analysis.umap": False,
    "analysis.bootstrap": 100,
}

# Seconds-long runs for tests that need several runs (determinism, resume, force, CLI).
MICRO_OVERRIDES = {
    "device": "cpu",
    "collect.num_checkpoints": 16,
    "classifier.epochs": 2,
    "autoencoder.channels": [8, 16],
    "autoencoder.latent_dim": 16,
    "autoencoder.steps": 20,
    "diffusion.channels": [8, 16],
    "diffusion.steps": 20,
    "diffusion.timesteps": 50,
    "sample.num_models": 6,
    "sample.steps": 10,
    "sample.trajectory_points": 5,
    "baselines.num_models": 4,
    "baselines.average_m": 4,
    "analysis.umap": False,
    "analysis.bootstrap": 20,
}


def tiny_config():
    from pdiff.core.config import with_overrides
    from pdiff.core.presets import preset

    return with_overrides(preset("digits"), TINY_OVERRIDES)


def micro_config(**extra):
    from pdiff.core.config import with_overrides
    from pdiff.core.presets import preset

    return with_overrides(preset("digits"), MICRO_OVERRIDES | extra)


def as_set_args(overrides: dict) -> list[str]:
    """CLI form of an overrides dict: ["--set", "key=json", ...]."""
    import json

    args: list[str] = []
    for key, value in overrides.items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    return args


def copy_run(src, dst: Path):
    """A private copy of a run (for tests that damage or extend it); returns its RunDir."""
    from pdiff.core.rundir import RunDir

    shutil.copytree(src.path if isinstance(src, RunDir) else Path(src), dst)
    return RunDir(dst)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The RunDir of a finished tiny run (all stages done). Read only: copy it to change it."""
    from pdiff.pipeline.runner import run_pipeline

    path = tmp_path_factory.mktemp("runs") / "tiny"
    return run_pipeline(path, tiny_config())


@pytest.fixture(scope="session")
def lone_zoo_run(tmp_path_factory):
    """A finished micro run whose zoo is a single checkpoint (the paper's K = 1). Read only."""
    from pdiff.pipeline.runner import run_pipeline

    path = tmp_path_factory.mktemp("runs") / "lone"
    return run_pipeline(path, micro_config(**{"collect.num_checkpoints": 1}))
