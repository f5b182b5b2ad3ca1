"""The paper's presets build and run a few steps on CPU, on tiny files in the real CIFAR format."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_cifar_smoke import write_synthetic_cifar10

from pdiff.core.config import with_overrides
from pdiff.core.presets import preset
from pdiff.pipeline.report import metrics_table
from pdiff.pipeline.runner import run_pipeline

FEW_STEPS = {"classifier.epochs": 1, "classifier.batch_size": 16, "data.train_subset": 48, "data.test_subset": 24,
             "collect.num_checkpoints": 4, "autoencoder.steps": 2, "diffusion.steps": 2, "diffusion.timesteps": 20,
             "sample.sampler": "ddim", "sample.steps": 5, "sample.num_models": 3, "baselines.num_models": 2,
             "analysis.umap": False, "analysis.bootstrap": 20, "sample.trajectory_points": 3, "device": "cpu"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cifar10-resnet18"])
def test_paper_preset_runs_a_few_steps_on_cpu(tmp_path: Path, name: str) -> None:
    write_synthetic_cifar10(tmp_path / "data", per_batch=10, test=24)
    config = with_overrides(preset(name), FEW_STEPS | {"data.root": str(tmp_path / "data")})
    assert config.autoencoder.channels == (64, 128, 256, 256, 32)  # the paper's sizes are kept
    run = run_pipeline(tmp_path / "run", config)
    zoo = run.load("zoo.safetensors")[0]["params"]
    assert zoo.shape == (4, 2048)  # layer4.1.bn1 and bn2, weight and bias: 4 x 512
    card = metrics_table(run).rows
    assert card["generated"]["n"] == 3 and card["zoo"]["n"] == 4


def test_cifar100_preset_targets_the_last_two_bn_layers() -> None:
    config = preset("cifar100-resnet18")
    assert config.data.name == "cifar100" and config.classifier.arch == "resnet18"
    assert set(config.collect.target.split(",")) == {"layer4.1.bn1.*", "layer4.1.bn2.*"}
