"""Memorization along training: where the models of one denoiser snapshot sit on the ruler.

Diffusion models of images first learn to generate and only later, with long training, start to
reproduce their training set, and the later the larger that set (Bonnaire et al., NeurIPS 2025,
arXiv 2505.17638). The diffusion stage keeps the denoiser at a few log-spaced training steps; the
dynamics stage samples models from each snapshot, and `snapshot_record` judges them exactly as the
analysis judges the final generator: accuracy against the zoo's range, the ruler between copies
and fresh SGD (the run's own anchors), the answer that position gives, and fidelity to the training
latents. Pure: tensors in, a JSON-able record out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..core.runtime import make_generator
from . import metrics, ruler
from .analysis import good_threshold, group_fidelity
from .verdict import zone

GROUP = "snapshot"


@dataclass(frozen=True)
class Reference:
    """What every snapshot is measured against: the training checkpoints (their test predictions,
    parameters, latents and accuracies) and the ruler's two anchor groups' per-model values."""

    labels: Tensor  # (S,)
    zoo_predictions: Tensor  # (K, S)
    zoo_params: Tensor  # (K, D)
    zoo_latents: Tensor  # (K, L), standardized
    zoo_accuracy: Tensor  # (K,)
    anchors: dict[str, dict[str, Tensor]]  # {"copies"|"fresh": {"behaviour": max IoU, "parameters": NN distance}}
    errors_median: float | None  # wrong test samples of a typical training checkpoint


def per_model(accuracy: Tensor, predictions: Tensor, params: Tensor, reference: Reference) -> dict[str, Tensor]:
    """Each sampled model's accuracy, max IoU of wrong test predictions with any training
    checkpoint, and distance to the nearest training checkpoint."""
    iou = metrics.wrong_sets_iou(predictions, reference.labels, reference.zoo_predictions)
    return {"accuracy": accuracy.float(), "max_iou": metrics.max_iou_to_zoo(iou)[0].float(),
            "nn_distance": metrics.nearest_neighbour(params.float(), reference.zoo_params.float())[0].float()}


def snapshot_record(models: dict[str, Tensor], latents: Tensor, reference: Reference, bootstrap: int,
                    seed: int) -> dict[str, Any]:
    """One snapshot's models (`per_model`) judged: accuracy, ruler positions with intervals, the
    answer the smaller resolving position gives (None when neither measure resolves), and latent
    fidelity."""
    values = {GROUP: {"behaviour": models["max_iou"], "parameters": models["nn_distance"]}} | reference.anchors
    axes = ruler.axes(values, reference.errors_median, bootstrap, make_generator(seed))
    places = ruler.place(values, GROUP, axes, bootstrap, make_generator(seed)) if axes else {}
    resolved = [p["position"] for p in places.values() if p.get("position") is not None]
    position = min(resolved) if resolved else None
    good = metrics.share_at_least(models["accuracy"], good_threshold(reference.zoo_accuracy))
    fidelity = group_fidelity(reference.zoo_latents, latents, "latent", seed)
    return {"median": metrics.median(models["accuracy"]), "good": good,
            "max_iou_median": metrics.median(models["max_iou"]),
            "nn_distance_median": metrics.median(models["nn_distance"]), "ruler": places, "position": position,
            "answer": "worse" if good < 50 else None if position is None else zone(position), **fidelity}


def onset(records: list[dict[str, Any]], answers: tuple[str, ...] = ("copies",)) -> int | None:
    """The first snapshot step from which every later snapshot's answer is in `answers` (by
    default: from which the generator only copies), or None when the last one is not."""
    first = None
    for record in records:
        if record.get("answer") in answers:
            first = record["step"] if first is None else first
        else:
            first = None
    return first


def first_good(records: list[dict[str, Any]], share: float = 50.0) -> int | None:
    """The first snapshot step at which at least `share` percent of the models are in the zoo's range."""
    return next((r["step"] for r in records if (r.get("good") or 0.0) >= share), None)


def positions_tensor(records: list[dict[str, Any]], measure: str) -> Tensor:
    """(snapshots,) positions on one measure, NaN where it gives none (for plots and tables)."""
    values = [((r.get("ruler") or {}).get(measure) or {}).get("position") for r in records]
    return torch.tensor([float("nan") if v is None else v for v in values], dtype=torch.float64)
