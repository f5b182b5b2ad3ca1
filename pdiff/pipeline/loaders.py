"""Rebuild a run's objects from its artifacts: the task, the zoo, the generator, the model groups.

The CLI, the app, notebooks and the next stage all open a run through these functions, so they
see exactly what the stage that wrote the files saw. Each raises a one-line `RunError` for a
missing or damaged file.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..core.artifacts import AUTOENCODER, BASE, BASELINES, DENOISER, EVALUATION, GENERATED, ZOO
from ..core.config import RunConfig
from ..core.errors import RunError
from ..core.rundir import RunDir
from ..generator.autoencoder import build_autoencoder
from ..generator.denoisers import build_denoiser
from ..generator.diffusion import build_process
from ..generator.normalizer import Normalizer
from ..generator.sampling import LatentCodec, LatentStats, ParamGenerator
from ..generator.whitening import LatentWhitening
from ..zoo.classifiers import build_classifier
from ..zoo.datasets import Dataset, load_dataset
from ..zoo.params import ParamLayout


@dataclass
class Task:
    """The classifier with its frozen rest, the test data, and the target layout of a run."""

    dataset: Dataset
    model: nn.Module
    layout: ParamLayout


def load_task(run: RunDir, config: RunConfig, device: torch.device, dataset: Dataset | None = None) -> Task:
    """The classifier of a run with its stored state, on `device` (the dataset is loaded unless given)."""
    dataset = dataset if dataset is not None else load_dataset(config.data)
    state, meta = run.load(BASE)
    model = build_classifier(config.classifier.arch, dataset.input_shape, dataset.num_classes)
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise RunError(f"{run.path}/{BASE} does not fit classifier {config.classifier.arch!r}; "
                       f"the run is damaged or from other code: redo it with --force collect") from None
    return Task(dataset, model.to(device).eval(), ParamLayout.from_json(meta["layout"]))


def load_layout(run: RunDir) -> ParamLayout:
    return ParamLayout.from_json(run.load(ZOO)[1]["layout"])


def load_zoo(run: RunDir) -> dict[str, torch.Tensor]:
    """params (K, D), steps (K,), heldout (K,) bool, accuracy and val_accuracy (K,) percent, and the
    fresh SGD run's fresh.params (F, D) and fresh.steps (F,) when it was collected."""
    tensors, _ = run.load(ZOO)
    tensors["heldout"] = tensors["heldout"].bool()
    return tensors


def training_rows(run: RunDir) -> torch.Tensor:
    """Zoo vectors the generative models may learn from (held-out checkpoints excluded)."""
    zoo = load_zoo(run)
    return zoo["params"][~zoo["heldout"]]


def load_codec(run: RunDir, config: RunConfig, device: torch.device) -> LatentCodec:
    """Rebuild the normalizer, the autoencoder and the latent standardization of a run."""
    ae_state, ae_meta = run.load(AUTOENCODER)
    autoencoder = build_autoencoder(ae_meta["dim"], config.autoencoder)
    autoencoder.load_state_dict(strip_prefix(ae_state, "model."))
    normalizer = Normalizer.from_state(strip_prefix(ae_state, "normalizer."))
    low, high = ae_state.get("latent.low"), ae_state.get("latent.high")
    if low is None or high is None:  # saved before sampling clipped x0: refit the bounds, or clip_x0 does nothing
        with torch.no_grad():
            refit = LatentStats.fit(autoencoder.eval().encode(normalizer.normalize(training_rows(run)).float()))
        low, high = refit.low, refit.high
    stats = LatentStats(ae_state["latent.mean"], ae_state["latent.scale"], low, high)
    return LatentCodec(normalizer, autoencoder.to(device).eval(), stats)


def snapshot_steps(run: RunDir) -> list[int]:
    """The training steps at which the diffusion stage kept the denoiser's weights."""
    steps = run.load(DENOISER)[1].get("snapshots") or []
    return [int(s) for s in steps if isinstance(s, int)]


def load_generator(run: RunDir, config: RunConfig, device: torch.device, snapshot: int | None = None) -> ParamGenerator:
    """The run's codec, its diffusion process and its trained denoiser (or the denoiser as it was
    at training step `snapshot`, one of `snapshot_steps`)."""
    codec = load_codec(run, config, device)
    d = config.diffusion
    diffusion = build_process(d)
    den_state, _ = run.load(DENOISER)
    coords = None
    length = config.autoencoder.latent_dim
    if "coords.basis" in den_state:  # the diffusion works on whitened latents
        coords = LatentWhitening.from_state(strip_prefix(den_state, "coords."))
        length = coords.dim
    denoiser = build_denoiser(d, length, diffusion)
    prefix = "model." if snapshot is None else f"snapshot.{snapshot}."
    if not any(k.startswith(prefix) for k in den_state):
        raise RunError(f"{run.path}/{DENOISER} has no snapshot at step {snapshot}; its snapshots: "
                       f"{', '.join(map(str, snapshot_steps(run))) or 'none'}")
    try:
        denoiser.load_state_dict(strip_prefix(den_state, prefix))
    except RuntimeError:
        raise RunError(f"{run.path}/{DENOISER} does not fit diffusion.denoiser={d.denoiser!r}; the run is damaged "
                       f"or from other code: redo it with --force diffusion") from None
    return ParamGenerator(codec, denoiser.to(device).eval(), diffusion.to(device), coords)


def model_groups(run: RunDir) -> dict[str, torch.Tensor]:
    """Every group of parameter vectors a run holds: zoo (training checkpoints), held-out
    checkpoints (if any), fresh (an independent SGD run the generator never saw, if collected),
    generated, and each baseline ("copies" first). "zoo" always comes first."""
    zoo = load_zoo(run)
    groups = {"zoo": zoo["params"][~zoo["heldout"]]}
    if zoo["heldout"].any():
        groups["heldout"] = zoo["params"][zoo["heldout"]]
    if "fresh.params" in zoo:
        groups["fresh"] = zoo["fresh.params"]
    if run.has(GENERATED):
        groups["generated"] = run.load(GENERATED)[0]["params"]
    if run.has(BASELINES):
        groups.update(run.load(BASELINES)[0])
    return groups


@dataclass
class Evaluated:
    """What the evaluate stage measured, per group (zoo first)."""

    accuracy: dict[str, torch.Tensor]  # (N_g,) percent
    predictions: dict[str, torch.Tensor]  # (N_g, S) predicted classes
    mean_probs: dict[str, torch.Tensor]  # (S, C) the group's averaged softmax (its ensemble)
    labels: torch.Tensor  # (S,)
    meta: dict


def load_evaluation(run: RunDir) -> Evaluated:
    """The evaluation of every group; a file lacking a group's predictions is a one-line error."""
    tensors, meta = run.load(EVALUATION)
    groups = meta.get("groups", [])
    missing = [g for g in groups if f"{g}.predictions" not in tensors or f"{g}.accuracy" not in tensors]
    if "labels" not in tensors or missing or "zoo" not in groups:
        raise RunError(f"{run.path}/{EVALUATION} lacks predictions ({', '.join(missing) or 'zoo'}); "
                       f"redo evaluation with python -m pdiff run --out {run.path} --force evaluate")
    return Evaluated({g: tensors[f"{g}.accuracy"] for g in groups}, {g: tensors[f"{g}.predictions"] for g in groups},
                     {g: tensors[f"{g}.mean_probs"] for g in groups if f"{g}.mean_probs" in tensors},
                     tensors["labels"], meta)


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def add_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in state.items()}
