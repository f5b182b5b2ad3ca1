"""How a zoo of several runs clusters: do checkpoints of one run err alike and sit together?

Why: a zoo imported from several training runs (seeds, recipes) raises a question before any
generator does: how different are the runs? Each measure compares pairs of checkpoints of the same
run with pairs from different runs, in behaviour (IoU of wrong test predictions) and in parameters
(L2 distance, between aligned vectors when the analysis aligns), and says how often a checkpoint's
nearest other checkpoint (in parameters, and in mistakes) is from its own run, beside the share
that chance gives. Pure: tensors in, a JSON-able record out; None with fewer than two known runs.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from . import metrics


def run_clusters(runs: Tensor, names: list[str | None], accuracy: Tensor, iou: Tensor, params: Tensor,
                 nearest: Tensor, most_alike: Tensor) -> dict[str, Any] | None:
    """The per-run rows and within/between summaries of the zoo's K checkpoints.

    `runs` (K,) indexes `names` (-1: unknown, left out), `iou` is the zoo's (K, K) IoU block,
    `params` its (K, D) vectors, `nearest` / `most_alike` (K,) each checkpoint's nearest other
    checkpoint in parameters and its max-IoU partner.
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
        "nearest_same_run": _same_share(runs, nearest), "mistakes_same_run": _same_share(runs, most_alike),
        "chance_same_run": _mean(same.double(), pairs),
    }


def _row(name: str | None, members: Tensor, accuracy: Tensor, iou: Tensor) -> dict[str, Any]:
    within = metrics.mean_off_diagonal(iou[members][:, members])
    return {"run": name, "n": int(members.sum()), "median": metrics.median(accuracy[members]),
            "iou_within": None if math.isnan(within) else within}


def _mean(values: Tensor, mask: Tensor) -> float | None:
    return values[mask].double().mean().item() if mask.any() else None


def _same_share(runs: Tensor, partner: Tensor) -> float | None:
    """Share of checkpoints of a known run whose partner (an index, -1: none) is of the same run."""
    found = (runs >= 0) & (partner >= 0)
    if not found.any():
        return None
    return (runs[partner.clamp(min=0)] == runs)[found].double().mean().item()
