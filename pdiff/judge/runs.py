"""How a zoo of several runs clusters: do checkpoints of one run err alike and sit together?

Why: a zoo imported from several training runs (seeds, recipes) raises a question before any
generator does: how different are the runs? Each measure compares pairs of checkpoints of the same
run with pairs from different runs, in behaviour (IoU of wrong test predictions) and in parameters
(L2 distance, between aligned vectors when the analysis aligns), and says how often a checkpoint's
nearest other checkpoint (in parameters, and in mistakes: the highest IoU) is from its own run,
beside the share that chance gives. Pure: tensors in, a JSON-able record out; None with fewer than two known runs.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from . import metrics


def run_clusters(runs: Tensor, names: list[str | None], accuracy: Tensor, iou: Tensor,
                 params: Tensor) -> dict[str, Any] | None:
    """The per-run rows and within/between summaries of the zoo's K checkpoints.

    `runs` (K,) indexes `names` (-1: unknown, left out), `iou` is the zoo's (K, K) IoU block and
    `params` its (K, D) vectors.
    """
    known = runs >= 0
    if runs[known].unique().numel() < 2:
        return None
    same = (runs[:, None] == runs[None, :]) & known[:, None] & known[None, :]
    pairs = ~torch.eye(len(runs), dtype=torch.bool) & known[:, None] & known[None, :]
    distance = torch.cdist(params.double(), params.double())
    rows = [_row(names[r], runs == r, accuracy, iou) for r in runs[known].unique().tolist()]
    return {
        "runs": rows,
        "iou_within_runs": _mean(iou, same & pairs), "iou_between_runs": _mean(iou, ~same & pairs),
        "distance_within_runs": _mean(distance, same & pairs), "distance_between_runs": _mean(distance, ~same & pairs),
        "nearest_same_run": _same_share(-distance, same, pairs), "mistakes_same_run": _same_share(iou, same, pairs),
        "chance_same_run": _mean(same.double(), pairs),
    }


def _row(name: str | None, members: Tensor, accuracy: Tensor, iou: Tensor) -> dict[str, Any]:
    within = metrics.mean_off_diagonal(iou[members][:, members])
    return {"run": name, "n": int(members.sum()), "median": metrics.median(accuracy[members]),
            "iou_within": None if math.isnan(within) else within}


def _mean(values: Tensor, mask: Tensor) -> float | None:
    return values[mask].double().mean().item() if mask.any() else None


def _same_share(similarity: Tensor, same: Tensor, pairs: Tensor) -> float | None:
    """Mean over checkpoints of the share of their most similar others that are of their own run.

    Ties share the credit: on a test set with a handful of errors many checkpoints reach the same
    max IoU, and picking the first of them would favour whichever run was saved first."""
    values = similarity.double().masked_fill(~pairs, float("-inf"))
    best = values.max(1).values
    rows = torch.isfinite(best)
    if not rows.any():
        return None
    tied = (values >= best[:, None]) & pairs
    return ((tied & same).sum(1).double() / tied.sum(1).clamp(min=1))[rows].mean().item()
