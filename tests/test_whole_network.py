"""The whole-network preset generates every parameter of the small CNN."""
from __future__ import annotations

from pathlib import Path

from pdiff.core.config import with_overrides
from pdiff.core.presets import preset
from pdiff.pipeline.loaders import load_task
from pdiff.pipeline.runner import run_pipeline
from pdiff.zoo.classifiers import build_classifier

FEW_STEPS = {"classifier.epochs": 3, "collect.num_checkpoints": 12, "autoencoder.steps": 3, "diffusion.steps": 3,
             "diffusion.timesteps": 50, "sample.num_models": 4, "baselines.enabled": False, "analysis.bootstrap": 20,
             "sample.trajectory_points": 3}


def test_whole_network_preset_targets_every_parameter(tmp_path: Path) -> None:
    config = with_overrides(preset("digits-whole"), FEW_STEPS)
    run = run_pipeline(tmp_path / "whole", config, until="evaluate")
    params = run.load("zoo.safetensors")[0]["params"]
    model = build_classifier("cnn", (1, 8, 8), 10)
    assert params.shape == (12, sum(p.numel() for p in model.parameters()))  # 5,178 floats each
    task = load_task(run, config, params.device)
    assert task.layout.names == [n for n, _ in model.named_parameters()]
    generated = run.load("generated.safetensors")[0]["params"]
    assert generated.shape == (4, params.shape[1]) and generated.isfinite().all()
