"""Named presets: dotted-key overrides of the defaults, for the command line, the app and notebooks.

Each preset is data (`PRESET_OVERRIDES`), with one line of help; `register_preset` adds your own.
The presets of the image datasets that load from a local folder (`mnist-cnn`, the paper's ResNet-18
settings on CIFAR) are listed here too, beside the embedded ones.
"""
from __future__ import annotations

from typing import Any

from .config import CONV_AUTOENCODER, RunConfig, with_overrides
from .errors import ConfigError

PRESET_OVERRIDES: dict[str, dict[str, Any]] = {
    # The embedded default: digits, small CNN, last BN + head (394 floats), about 25 s on a 2-core CPU.
    "digits": {},
    # The paper's autoencoder and denoiser sizes (v2) on the embedded data: meant for a GPU.
    "paper": {
        **CONV_AUTOENCODER,
        "collect.num_checkpoints": 200,
        "diffusion.denoiser": "conv",
        "diffusion.whiten": 0.0,
        "sample.clip_x0": True,
        "autoencoder.channels": (64, 128, 256, 256, 32),
        "autoencoder.latent_dim": 128,
        "autoencoder.steps": 30000,
        "autoencoder.batch_size": 200,
        "diffusion.channels": (64, 128, 256, 512),
        "diffusion.time_dim": 128,
        "diffusion.steps": 30000,
        "diffusion.batch_size": 200,
        "sample.num_models": 200,
    },
    # Whole-network generation: all 5,178 parameters of the small CNN. What makes it work: a
    # gentle collection (AdamW 1e-3: at the default 0.03 the zoo itself degrades), per-tensor
    # normalization (every layer on one scale), a deeper encoder with narrow early layers (the
    # sequence is 13x longer) and a 128-value latent. Norm layers keep the base's statistics.
    "digits-whole": {
        **CONV_AUTOENCODER,
        "collect.target": "all",
        "collect.lr": 0.001,
        "autoencoder.channels": (8, 16, 32, 64, 64, 64),
        "autoencoder.latent_dim": 128,
        "autoencoder.steps": 1500,
        "analysis.umap": False,
    },
    # MNIST-1D (procedurally generated, cached under data.root): a 1-D CNN, last BN + head (394
    # floats). Converged (30 epochs) this CNN reaches 98 %, the ceiling digits already has; a
    # short cosine schedule (3 epochs, 186 SGD steps) leaves it near 85 %, with 100-150 wrong
    # test samples per model, so wrong-prediction IoU can tell zoo models apart. Collection at a
    # third of the default lr (0.03 jumps: zoo minimum 74 %) with 5 steps between checkpoints
    # (1 step: neighbours nearly identical) gives a zoo near 88 %, median max IoU about 0.90.
    "mnist1d": {
        "data.name": "mnist1d",
        "classifier.arch": "cnn1d",
        "classifier.epochs": 3,
        "collect.target": "last-norm:1,head.*",
        "collect.lr": 0.01,
        "collect.steps_per_checkpoint": 5,
    },
}

PRESET_OVERRIDES["mnist1d-guided"] = {
    **PRESET_OVERRIDES.get("mnist1d", {}),
    # A zoo with a range of quality: the target restarts from its initial values and climbs from
    # chance to trained under a gentle SGD (about 15 % to 80 % on MNIST-1D).
    "collect.reinit": True,
    "collect.optimizer": "sgd",
    "collect.lr": 0.003,
    "collect.steps_per_checkpoint": 2,
    # The denoiser also sees each checkpoint's accuracy, dropped from 10 % of its training batches.
    "diffusion.condition": "accuracy",
    "diffusion.cond_drop": 0.1,
}

PRESET_HELP: dict[str, str] = {
    "digits": "embedded sklearn digits, small CNN, last BN + head; about 25 s on a 2-core CPU",
    "paper": "digits with the paper's AE and 1D-conv denoiser, sizes and step counts; meant for a GPU",
    "digits-whole": "whole-network generation: every parameter of the small CNN (5,178 floats); ~5-12 min on a CPU",
    "mnist1d": "MNIST-1D (generated locally, no download), 1-D CNN, last BN + head; zoo near 88 %, about 25 s on a 2-core CPU",
    "mnist1d-guided": "MNIST-1D with a zoo from chance to trained and a denoiser conditioned on accuracy: "
                      "ask for models of a given accuracy (python -m pdiff guide)",
}


def _resnet18_preset(dataset: str) -> dict[str, Any]:
    """The paper's main setting: ResNet-18, target = the last two BatchNorm layers (2048 floats),
    with the paper's autoencoder and step counts and this project's denoiser."""
    return {
        "data.name": dataset,
        "classifier.arch": "resnet18",
        "classifier.epochs": 100,
        "classifier.lr": 0.1,
        "classifier.batch_size": 128,
        "collect.target": "layer4.1.bn1.*,layer4.1.bn2.*",
        "collect.num_checkpoints": 200,
        "collect.steps_per_checkpoint": 1,
        **CONV_AUTOENCODER,
        "autoencoder.channels": (64, 128, 256, 256, 32),
        "autoencoder.latent_dim": 128,
        "autoencoder.steps": 30000,
        "autoencoder.batch_size": 200,
        "diffusion.width": 256,  # the MLP denoiser (notebook 07), wider for the larger latent
        "diffusion.depth": 3,
        "diffusion.time_dim": 128,
        "diffusion.steps": 30000,
        "diffusion.batch_size": 200,
        "sample.num_models": 200,
    }


# Image datasets read from a local folder (zoo/vision.py): the paper's main setting and a small MNIST run.
PRESET_OVERRIDES |= {
    "mnist-cnn": {"data.name": "mnist", "classifier.arch": "cnn", "classifier.epochs": 5, "classifier.batch_size": 128},
    "cifar10-resnet18": _resnet18_preset("cifar10"),
    "cifar100-resnet18": _resnet18_preset("cifar100"),
}
PRESET_HELP |= {
    "mnist-cnn": "MNIST (local root), small CNN, last BN + head; a few minutes on a CPU",
    "cifar10-resnet18": "paper setting on CIFAR-10: ResNet-18, last two BN layers (2048 floats); meant for a GPU",
    "cifar100-resnet18": "paper setting on CIFAR-100: ResNet-18, last two BN layers (2048 floats); meant for a GPU",
}


def register_preset(name: str, overrides: dict[str, Any], help: str = "") -> None:
    """Add a named preset (dotted-key overrides of the defaults)."""
    with_overrides(RunConfig(), overrides)  # validate now, not when the preset is first used
    PRESET_OVERRIDES[name] = dict(overrides)
    PRESET_HELP[name] = help


def preset(name: str) -> RunConfig:
    """The config of a named preset; an unknown name lists the valid ones."""
    if name not in PRESET_OVERRIDES:
        raise ConfigError(f"unknown preset {name!r}; valid presets: {', '.join(PRESET_OVERRIDES)}")
    return with_overrides(RunConfig(), PRESET_OVERRIDES[name])
