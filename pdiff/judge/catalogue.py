"""Every model of a run, one value per column: what the projector colours by and what the model
table lists.

The scorecard summarises a group by medians; a user exploring the latent map asks about single
models: which checkpoint does this one err like, how far is it from the nearest one, where along
the SGD run does it land, and where would it alone sit on the ruler between copies (0) and fresh
SGD (1)? `per_model` answers all of these from what the analysis stored, without recomputing a
metric. A model's own ruler position uses the run's anchors (`meta["ruler"]`) and the ruler's
own formula (`ruler.positions`), so a group's median position is the median of these only up to
the median of a ratio; the scorecard's number stays the group's answer.
Pure: tensors in, tensors out.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from . import ruler

# key -> what it is (the projector's colour menu and the model table's column help)
COLUMNS: dict[str, str] = {
    "accuracy": "test accuracy (%)",
    "max_iou": "max IoU of its wrong test predictions with any training checkpoint (1 = the same mistakes)",
    "novelty": "1 − max IoU: how differently from every training checkpoint it errs",
    "errs_like": "the training checkpoint it errs like (its max-IoU checkpoint), index in the zoo",
    "nn_distance": "L2 distance to the nearest training checkpoint (raw parameters)",
    "nearest": "its nearest training checkpoint (L2), index in the zoo",
    "step": "its own SGD step (training checkpoints, held-out checkpoints and fresh SGD; none for the others)",
    "nearest_step": "SGD step of its nearest training checkpoint: where along the training run it lands",
    "ruler_behaviour": "its own place on the ruler by behaviour (0 = copies, 1 = fresh SGD; the group's median "
                       "decides the answer)",
    "ruler_parameters": "its own place on the ruler by parameters (0 = copies, 1 = fresh SGD, log scale of the "
                        "distance)",
}
LABELS: dict[str, str] = {"accuracy": "accuracy (%)", "max_iou": "max IoU", "novelty": "novelty",
                          "errs_like": "errs like zoo #", "nn_distance": "NN distance", "nearest": "nearest zoo #",
                          "step": "SGD step", "nearest_step": "nearest's SGD step",
                          "ruler_behaviour": "ruler: behaviour", "ruler_parameters": "ruler: parameters"}
MEASURE_KEYS = {"behaviour": "max_iou", "parameters": "nn_distance"}


def per_model(accuracy: Mapping[str, Tensor], analysis: Mapping[str, Tensor], steps: Mapping[str, Tensor],
              axes: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Tensor]]:
    """column -> group -> (N_g,) float64 values (NaN where undefined), for every group of `accuracy`.

    `analysis`: the analysis tensors (`{g}.max_iou`, `{g}.max_iou_index`, `{g}.nn_distance`,
    `{g}.nn_index`); `steps`: the SGD step of each model of the groups that have one ("zoo" = the
    training checkpoints, "heldout", "fresh"); `axes`: the ruler's anchors per measure
    (`meta["ruler"]`), None when the run has none.
    """
    out: dict[str, dict[str, Tensor]] = {key: {} for key in COLUMNS}
    zoo_steps = steps.get("zoo")
    for g, acc in accuracy.items():
        n = acc.numel()
        nan = torch.full((n,), float("nan"), dtype=torch.float64)
        iou = _get(analysis, f"{g}.max_iou", nan)
        out["accuracy"][g] = acc.double().reshape(-1)
        out["max_iou"][g], out["novelty"][g] = iou, 1.0 - iou
        out["errs_like"][g] = _index(analysis, f"{g}.max_iou_index", n)
        out["nn_distance"][g] = _get(analysis, f"{g}.nn_distance", nan)
        out["nearest"][g] = _index(analysis, f"{g}.nn_index", n)
        out["step"][g] = steps[g].double().reshape(-1) if g in steps and steps[g].numel() == n else nan
        out["nearest_step"][g] = _lookup(zoo_steps, out["nearest"][g])
        for measure, key in MEASURE_KEYS.items():
            out[f"ruler_{measure}"][g] = own_positions(measure, out[key][g], (axes or {}).get(measure))
    return out


def own_positions(measure: str, values: Tensor, axis: Mapping[str, Any] | None) -> Tensor:
    """Each model's own place on one measure of the ruler; NaN where the measure does not resolve."""
    values = values.double().reshape(-1)
    if not axis or not axis.get("resolves"):
        return torch.full_like(values, float("nan"))
    copies = torch.tensor(float(axis["copies"]), dtype=torch.float64)
    fresh = torch.tensor(float(axis["fresh"]), dtype=torch.float64)
    return ruler.positions(measure, values, copies, fresh)


def _get(tensors: Mapping[str, Tensor], key: str, default: Tensor) -> Tensor:
    value = tensors.get(key)
    return default.clone() if value is None or value.numel() != default.numel() else value.double().reshape(-1)


def _index(tensors: Mapping[str, Tensor], key: str, n: int) -> Tensor:
    """An index array as float64 with NaN for "none" (-1: a lone checkpoint has no neighbour)."""
    value = tensors.get(key)
    if value is None or value.numel() != n:
        return torch.full((n,), float("nan"), dtype=torch.float64)
    value = value.double().reshape(-1)
    return torch.where(value >= 0, value, torch.full_like(value, float("nan")))


def _lookup(table: Tensor | None, index: Tensor) -> Tensor:
    """table[index] where index is a valid row, NaN elsewhere."""
    if table is None:
        return torch.full_like(index, float("nan"))
    table = table.double().reshape(-1)
    valid = ~torch.isnan(index) & (index >= 0) & (index < table.numel())
    out = torch.full_like(index, float("nan"))
    out[valid] = table[index[valid].long()]
    return out
