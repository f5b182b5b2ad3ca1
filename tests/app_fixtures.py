"""Shared fixtures of the app tests: one tiny finished run, built once per test session.

Import the fixture into a test module (`from app_fixtures import app_run  # noqa: F401`). It is
separate from conftest's `tiny_run` so the app tests pin their own sizes (8 trajectory points,
20 checkpoints, T=100) and stay about 5 s to build.
The run is built in-process with `run_pipeline` (no subprocess), with sizes small enough for
seconds of CPU; UMAP stays off so numba's first compilation is not paid in the default suite.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TINY_OVERRIDES = {
    "device": "cpu",
    "collect.num_checkpoints": 20, "classifier.epochs": 3, "autoencoder.steps": 30, "diffusion.steps": 30,
    "diffusion.timesteps": 100, "sample.num_models": 10, "sample.steps": 20, "baselines.num_models": 8,
    "analysis.umap": False, "analysis.bootstrap": 200, "sample.trajectory_points": 8,
    "autoencoder.channels": [8, 16], "diffusion.channels": [8, 16],
}
TINY_SETS = [f"{k}={v}".replace("False", "false").replace(" ", "") for k, v in TINY_OVERRIDES.items()]


def tiny_config():
    from pdiff.core.config import with_overrides
    from pdiff.core.presets import preset

    return with_overrides(preset("digits"), TINY_OVERRIDES)


@pytest.fixture(scope="session")
def app_run(tmp_path_factory) -> Path:
    """Path of a finished tiny run; its parent folder is a runs root holding only it."""
    import torch

    from pdiff.pipeline.runner import run_pipeline

    root = tmp_path_factory.mktemp("runs")
    path = root / "tiny"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and immune to a busy machine
    try:
        run_pipeline(path, tiny_config())
    finally:
        torch.set_num_threads(threads)
    return path


def clone_run(src: Path, root: Path, name: str) -> Path:
    """A private copy of a run (for tests that damage or extend it)."""
    dst = root / name
    shutil.copytree(src, dst)
    return dst
