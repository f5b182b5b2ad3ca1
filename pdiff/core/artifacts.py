"""The files of a run directory: each artifact's name and what it holds, declared once.

Every reader and writer (stages, report, app, ablation runner, tests) takes the names from here;
which stage writes and reads each file is declared with the stage (see `stages.STAGES`). All
artifacts are safetensors with JSON metadata: no pickle, so a run from a stranger opens safely.
"""
from __future__ import annotations

BASE = "base.safetensors"
ZOO = "zoo.safetensors"
AUTOENCODER = "autoencoder.safetensors"
DENOISER = "denoiser.safetensors"
GENERATED = "generated.safetensors"
BASELINES = "baselines.safetensors"
EVALUATION = "evaluation.safetensors"
ANALYSIS = "analysis.safetensors"
DYNAMICS = "dynamics.safetensors"

DESCRIPTIONS: dict[str, str] = {
    BASE: "the trained classifier's state dict: the frozen rest shared by every model",
    ZOO: "K checkpoints of the target parameters (K x D), their steps, seeds, held-out mask and accuracy",
    AUTOENCODER: "the parameter normalizer, the autoencoder's weights, the latent statistics and the loss curve",
    DENOISER: "the latent denoiser's weights, snapshots of them along training, and the loss curve",
    GENERATED: "the sampled parameter vectors, their latents and the x0-predictions of a few samples",
    BASELINES: "the cheap generators' models: noise, averaged, Gaussian, AE reconstruction, decoder only",
    EVALUATION: "every model's test accuracy, predictions and each group's mean probabilities",
    ANALYSIS: "similarity, neighbours, fidelity, projections and the scorecard of every group",
    DYNAMICS: "models sampled from each denoiser snapshot: accuracy, place on the ruler and fidelity along training",
}

# Where NaN marks a value that is undefined (a lone zoo checkpoint has no neighbour); every other
# artifact must hold finite numbers only, or its stage fails instead of saving it (divergence.py).
NAN_MEANS_UNDEFINED = frozenset({ANALYSIS, DYNAMICS})
