"""One model's neighbours: the training checkpoints nearest to it in a chosen space, the checkpoint
(and the fresh SGD model) it errs like, and which test samples a pair gets wrong together.

The analysis already names each model's three L2-nearest checkpoints, but L2 over raw parameters
is only one way to be near: the memorization evidence is behavioural (the checkpoint that makes
the same mistakes, `{g}.max_iou_index`), and the generator works in latent space. So the app asks
this module for the k nearest checkpoints in one of three spaces:

- **parameters**: L2 distance between raw parameter vectors;
- **latents**: L2 distance between standardized autoencoder latents (where the diffusion works);
- **predictions**: 1 - IoU of the sets of wrongly classified test samples (0 = the same mistakes).

Distances are computed directly in float64 for the one model asked about (a few hundred
checkpoints), never from the matmul expansion that loses precision at the short distances
where copies live. Pure: tensors in, numbers out.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

SPACES = ("parameters", "latents", "predictions")
SPACE_UNITS = {"parameters": "L2 over raw parameters", "latents": "L2 over standardized latents",
               "predictions": "1 − IoU of wrong test predictions"}


@dataclass(frozen=True)
class Neighbour:
    index: int  # row of the reference group (a training checkpoint's index in the zoo)
    distance: float  # in the chosen space (see SPACE_UNITS)


@dataclass(frozen=True)
class ErrsLike:
    """The models one model makes the same mistakes as: its max-IoU training checkpoint (as the
    analysis stored it) and the fresh SGD model with the highest IoU (None without a fresh run)."""

    checkpoint: int  # -1 when the model has no other checkpoint to compare with (a lone zoo)
    checkpoint_iou: float
    fresh: int | None = None
    fresh_iou: float | None = None


@dataclass(frozen=True)
class Overlap:
    """Which test samples two models get wrong: both (and of those, how many with the same wrong
    answer), only the first, only the second."""

    both: Tensor  # (n,) sample indices
    only_a: Tensor
    only_b: Tensor
    same_answer: Tensor  # (n,) bool over `both`: the two models predict the same wrong class

    @property
    def iou(self) -> float:
        """|both| / |either|, 1.0 when neither model errs (the convention of metrics.wrong_sets_iou)."""
        union = len(self.both) + len(self.only_a) + len(self.only_b)
        return 1.0 if union == 0 else len(self.both) / union


def nearest(space: str, query: Tensor, reference: Tensor, k: int, exclude: int | None = None) -> list[Neighbour]:
    """The `k` rows of `reference` nearest to one model, nearest first.

    For "parameters" and "latents", `query` is the model's vector (D,) and `reference` the
    checkpoints' vectors (K, D); for "predictions", `query` is the model's row of IoU with the
    checkpoints (K,) and `reference` is ignored. `exclude` skips one row (the model itself, when
    it is a checkpoint). Ties keep the lower index first.
    """
    if space not in SPACES:
        raise ValueError(f"space must be one of {', '.join(SPACES)}, got {space!r}")
    distance = distances(space, query, reference).clone()
    if exclude is not None and 0 <= exclude < distance.numel():
        distance[exclude] = float("inf")
    order = sorted(range(distance.numel()), key=lambda i: (float(distance[i]), i))
    return [Neighbour(i, float(distance[i])) for i in order[:k] if torch.isfinite(distance[i])]


def distances(space: str, query: Tensor, vectors: Tensor) -> Tensor:
    """(n,) distances in `space` from one model to given rows: L2 from `query` (D,) to `vectors`
    (n, D) for "parameters" and "latents"; for "predictions", `query` holds the IoU with each row
    (n,) and the distance is 1 - IoU."""
    if space == "predictions":
        return 1.0 - query.detach().double().reshape(-1).cpu()
    return (vectors.detach().double().cpu() - query.detach().double().cpu().reshape(1, -1)).norm(dim=1)


def errs_like(checkpoint: int, checkpoint_iou: float, iou_to_fresh: Tensor | None = None,
              exclude_fresh: int | None = None) -> ErrsLike:
    """A model's max-IoU checkpoint (index and IoU from the analysis, `{g}.max_iou_index` and
    `{g}.max_iou`) and the fresh SGD model whose mistakes overlap most with its own (`iou_to_fresh`:
    its row of IoU with the fresh models; `exclude_fresh` skips itself when it is one of them)."""
    if iou_to_fresh is None or iou_to_fresh.numel() == 0:
        return ErrsLike(int(checkpoint), float(checkpoint_iou))
    row = iou_to_fresh.detach().double().reshape(-1).cpu().clone()
    if exclude_fresh is not None and 0 <= exclude_fresh < row.numel():
        row[exclude_fresh] = float("-inf")
    if row.numel() == 0 or not torch.isfinite(row.max()):
        return ErrsLike(int(checkpoint), float(checkpoint_iou))
    best = int(torch.argmax(row))  # the first of equal maxima, as metrics.max_similarity picks
    return ErrsLike(int(checkpoint), float(checkpoint_iou), best, float(row[best]))


def wrong_overlap(pred_a: Tensor, pred_b: Tensor, labels: Tensor) -> Overlap:
    """The test samples two models (predictions (S,) each) get wrong, split by who gets them wrong."""
    pred_a, pred_b, labels = (t.detach().reshape(-1).cpu() for t in (pred_a, pred_b, labels))
    if not pred_a.shape == pred_b.shape == labels.shape:
        raise ValueError(f"predictions and labels must cover the same samples: {pred_a.shape[0]}, "
                         f"{pred_b.shape[0]}, {labels.shape[0]}")
    wrong_a, wrong_b = pred_a != labels, pred_b != labels
    both = torch.nonzero(wrong_a & wrong_b).reshape(-1)
    return Overlap(both, torch.nonzero(wrong_a & ~wrong_b).reshape(-1), torch.nonzero(~wrong_a & wrong_b).reshape(-1),
                   pred_a[both] == pred_b[both])
