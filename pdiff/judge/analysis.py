"""Did the generator make new, good models, or copy its training checkpoints? The numbers behind the answer.

Every group (training zoo, held-out checkpoints, generated, each baseline) goes through the same
protocol: accuracy with bootstrap intervals, behavioural similarity to the zoo (IoU of wrong
predictions), the nearest zoo model in parameter space and agreement with it, diversity within
the group, the ensemble gain, fidelity to the zoo as a set (spread, precision and recall, Fréchet
distance, each beside its split-half floor, in latent and in parameter space), and shared 2D
projections of parameters and latents. `group_rows` is the one place these per-group numbers (the
scorecard) are computed; the analyse stage (pipeline/stages/analyse.py) hands in what it loaded
from the run and stores the result, and `report.metrics_table` is the one place they are read.
Nothing here touches files.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import torch

from ..core.config import AnalysisConfig
from ..core.runtime import make_generator
from ..core.training import Progress
from . import fidelity, metrics, ruler
from .projection import PCABasis, fit_projection

GOOD_BELOW = 1.0  # points: a model is "good" (in the zoo's range) down to this below the zoo's 5th percentile


@dataclass(frozen=True)
class AnalysisInputs:
    """What the analysis judges, per group ("zoo", the training checkpoints, first): the evaluation
    of every model, its parameter vector and its latent (for generated models the latent the
    diffusion sampled), and the denoising trajectory of a few samples."""

    accuracy: dict[str, torch.Tensor]  # (N_g,) percent
    predictions: dict[str, torch.Tensor]  # (N_g, S) predicted classes
    mean_probs: dict[str, torch.Tensor]  # (S, C) each group's averaged softmax
    labels: torch.Tensor  # (S,)
    params: dict[str, torch.Tensor]  # (N_g, D), neuron-aligned where the analysis aligns (judge/matching.py)
    latents: dict[str, torch.Tensor]  # (N_g, latent_dim), standardized; {} for a run without a generator
    trajectory: torch.Tensor  # (points, models, D); empty when none was kept
    raw_params: dict[str, torch.Tensor] | None = None  # the parameters as stored, when `params` are aligned


def analyse(inputs: AnalysisInputs, settings: AnalysisConfig, seed: int, device: torch.device,
            progress: Progress | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Every analysis of a finished evaluation: (tensors, metadata with the scorecard, headline)."""
    report = progress or (lambda *_: None)
    acc, pred, labels, params, latents = inputs.accuracy, inputs.predictions, inputs.labels, inputs.params, inputs.latents
    names = list(acc)
    sizes = [len(acc[g]) for g in names]
    out: dict[str, torch.Tensor] = {}

    report(0, 4, {"phase": "similarity"})
    all_pred = torch.cat([pred[g] for g in names]).to(device)
    iou = metrics.wrong_sets_iou(all_pred, labels.to(device)).cpu()  # (M, M)
    out["iou"] = iou
    blocks = dict(zip(names, _row_slices(sizes)))
    for g in names:
        to_zoo = iou[blocks[g], blocks["zoo"]]  # "zoo" is always first
        out[f"{g}.max_iou"], out[f"{g}.max_iou_index"] = metrics.max_iou_to_zoo(to_zoo, exclude_self=g == "zoo")

    report(1, 4, {"phase": "neighbours"})
    frames = [params] + ([inputs.raw_params] if inputs.raw_params is not None else [])
    for g in names:
        dist, index, near_distances, near = nearest_in_frames(frames, g, exclude_self=g == "zoo")
        out[f"{g}.nn_distance"], out[f"{g}.nn_index"] = dist, index
        out[f"{g}.neighbour_distances"], out[f"{g}.neighbours"] = near_distances, near
        agree = metrics.prediction_agreement(pred[g], pred["zoo"])  # (N_g, K)
        found = index >= 0  # a lone zoo model has no neighbour (index -1): NaN agreement
        out[f"{g}.nn_agreement"] = agree.gather(1, index.clamp(min=0)[:, None])[:, 0].where(found, float("nan"))

    report(2, 4, {"phase": "projections"})
    out |= _projections(settings, seed, params, latents, inputs.trajectory, names)
    out |= {f"{g}.latent_std": latents[g].double().std(0).float() for g in latents if len(latents[g]) > 1}

    rows = group_rows(acc, pred, labels, inputs.mean_probs, out, {g: iou[b, b] for g, b in blocks.items()},
                      settings.bootstrap, seed)
    axes = place_on_ruler(rows, out, settings.bootstrap, seed)
    report(3, 4, {"phase": "fidelity"})
    for g, row in rows.items():
        if latents:
            row |= _floors(latents["zoo"], "latent", seed) if g == "zoo" else \
                group_fidelity(latents["zoo"], latents[g], "latent", seed)
        if g == "zoo":  # the reference itself: only the floors mean something
            row |= _floors(_zscore(params["zoo"], params["zoo"]), "param", seed)
            continue
        row |= group_fidelity(_zscore(params["zoo"], params["zoo"]), _zscore(params[g], params["zoo"]), "param", seed)
    report(4, 4, {})
    meta = {"groups": names, "sizes": sizes, "scorecard": rows,
            "ruler": None if axes is None else {m: a.record() for m, a in axes.items()}}
    return out, meta, {"scorecard_generated": rows.get("generated", {})}


def nearest_in_frames(frames: list[dict[str, torch.Tensor]], group: str,
                      exclude_self: bool) -> tuple[torch.Tensor, ...]:
    """Each model's nearest training checkpoint (distance, index) and three nearest (distances,
    indices), in whichever frame of `frames` puts it nearer.

    Why: aligning every model to one reference gives each its own renumbering of hidden units,
    and two models that are close as stored (a checkpoint and a copy of it, a generated model and
    the checkpoint it came from) can be renumbered differently. The distance in every frame is the
    distance under some renumbering, so each is an upper bound of the distance with the best one;
    the smaller is the better bound."""
    best: list[torch.Tensor] = []
    for frame in frames:
        zoo, models = frame["zoo"].float(), frame[group].float()
        dist, index = metrics.nearest_neighbour(models, zoo, exclude_self=exclude_self)
        near_distances, near = metrics.k_nearest(models, zoo, 3, exclude_self)
        found = [dist, index, near_distances, near]
        if not best:
            best = found
            continue
        nearer = dist < best[0]  # NaN (a lone zoo model) is never nearer
        best = [torch.where(nearer if new.dim() == 1 else nearer[:, None], new, old) for new, old in zip(found, best)]
    return tuple(best)


def group_rows(acc: dict[str, torch.Tensor], pred: dict[str, torch.Tensor], labels: torch.Tensor,
               mean_probs: dict[str, torch.Tensor], per_model: dict[str, torch.Tensor],
               within_iou: dict[str, torch.Tensor], bootstrap: int, seed: int) -> dict[str, dict[str, Any]]:
    """The scorecard: one row of metrics per group, "zoo" first.

    `per_model` holds each group's `{g}.max_iou`, `{g}.nn_distance`, `{g}.nn_index` and
    `{g}.nn_agreement` (one value per model), `within_iou` each group's own (N_g, N_g) IoU block.
    Every median (and the within-group IoU) comes with a 95% bootstrap interval; undefined values
    (a lone zoo checkpoint has no neighbour) are None (JSON null). `nn_top` / `nn_top_share` /
    `nn_targets` say where the group lands in the zoo (the 3 most frequent nearest checkpoints,
    the share of models nearest to them, how many checkpoints are nearest to any model);
    `test_samples` and `errors_median` (wrong test samples per model) say how much evidence the
    IoU of wrong predictions rests on. `good` is the share of models in the zoo's range
    (`good_threshold`).
    """
    floor = good_threshold(acc["zoo"])
    rows = {}
    for g, a in acc.items():
        gen = make_generator(seed)
        row: dict[str, Any] = metrics.accuracy_summary(a)
        row["mean_ci"] = list(metrics.bootstrap_ci(a, bootstrap, generator=gen))
        row["median_ci"] = list(metrics.bootstrap_ci(a, bootstrap, generator=gen, stat="median"))
        row["good"] = metrics.share_at_least(a, floor)
        good = (a.double() >= floor).double() * 100  # its mean is `good`
        row["good_ci"] = list(metrics.bootstrap_ci(good, bootstrap, generator=gen))
        for key in ("max_iou", "nn_distance"):
            row[f"{key}_median"], row[f"{key}_median_ci"] = _median_with_ci(per_model[f"{g}.{key}"], bootstrap, gen)
        iou_ci = row["max_iou_median_ci"]
        row["novelty_median"] = None if row["max_iou_median"] is None else 1.0 - row["max_iou_median"]
        row["novelty_median_ci"] = None if iou_ci is None else [1.0 - iou_ci[1], 1.0 - iou_ci[0]]
        row["nn_agreement_median"] = _none_if_nan(metrics.median(per_model[f"{g}.nn_agreement"]))
        top, share, targets = metrics.nearest_concentration(per_model[f"{g}.nn_index"])
        row["nn_top"], row["nn_top_share"], row["nn_targets"] = top, _none_if_nan(share), targets
        row["iou_within"] = _none_if_nan(metrics.mean_off_diagonal(within_iou[g]))
        within_ci = metrics.mean_off_diagonal_ci(within_iou[g], bootstrap, generator=gen)
        row["iou_within_ci"] = None if within_ci is None else list(within_ci)
        row["distinct_predictions"] = metrics.distinct_rows(pred[g])
        row["zoo_distinct_same_n"] = metrics.distinct_rows_of_subsets(pred["zoo"], row["n"], DISTINCT_DRAWS, gen)
        row["test_samples"] = int(labels.numel())
        row["errors_median"] = metrics.median((pred[g] != labels).sum(1))
        if g in mean_probs:
            row["ensemble_accuracy"] = metrics.ensemble_accuracy(mean_probs[g], labels)
            row["ensemble_gain"] = metrics.ensemble_gain(mean_probs[g], labels, a)
        rows[g] = row
    return rows


DISTINCT_DRAWS = 20  # random zoo subsets behind `zoo_distinct_same_n`


def good_threshold(zoo_accuracy: torch.Tensor) -> float:
    """The lowest accuracy (percent) that is still in the zoo's range: its 5th percentile, less a
    point. For a tight zoo that is about its median less a point; for a zoo that climbs from chance
    to trained it reaches far down, so the generator is not called worse for following its zoo."""
    return torch.quantile(zoo_accuracy.double(), 0.05).item() - GOOD_BELOW


def place_on_ruler(rows: dict[str, dict[str, Any]], per_model: dict[str, torch.Tensor], bootstrap: int,
                   seed: int) -> dict[str, ruler.Axis] | None:
    """Every group's position between copies and fresh training (judge/ruler.py), as `row["ruler"]`;
    returns the ruler's axes (None when the run lacks the copies or the fresh SGD run)."""
    values = {g: {"behaviour": per_model[f"{g}.max_iou"], "parameters": per_model[f"{g}.nn_distance"]} for g in rows}
    gen = make_generator(seed)
    axes = ruler.axes(values, rows["zoo"].get("errors_median"), bootstrap, gen)
    if axes is None:
        return None
    for g, row in rows.items():
        row["ruler"] = ruler.place(values, g, axes, bootstrap, gen)
    return axes

FIDELITY_KEYS = ("spread_ratio", "precision", "recall", "fd", "fd_floor", "self_precision", "self_recall")


def group_fidelity(reference: torch.Tensor, group: torch.Tensor, space: str, seed: int) -> dict[str, float | None]:
    """Set-level fidelity of a group against the training zoo (fidelity.py), keys `{space}_{metric}`.

    Each metric sits beside its floor measured the same way on two halves of the zoo. None where
    the sets are too small for k-NN balls (k = 3) or a split (fewer than 8 zoo checkpoints).
    """
    k = 3
    if len(reference) < 8 or len(group) <= k:
        return {f"{space}_{key}": None for key in FIDELITY_KEYS}
    report = fidelity.fidelity_report(reference.double(), group.double(), make_generator(seed), k=k)
    return {f"{space}_{key}": _none_if_nan(float(report[key])) for key in FIDELITY_KEYS}


def _floors(reference: torch.Tensor, space: str, seed: int) -> dict[str, float | None]:
    """The zoo's own row: what a perfect generator would score (split-half floors), nothing else."""
    row = group_fidelity(reference, reference, space, seed)
    return {key: (value if key.endswith(("_floor", "_self_precision", "_self_recall")) else None)
            for key, value in row.items()}


def _zscore(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Each coordinate z-scored with the reference's mean and std (constant coordinates kept at 0)."""
    x, reference = x.double(), reference.double()
    std = reference.std(0, correction=0)
    return (x - reference.mean(0)) / torch.where(std > 0, std, torch.ones_like(std))


def _median_with_ci(values: torch.Tensor, bootstrap: int, gen: torch.Generator) -> tuple[float | None, list | None]:
    """The median of the defined values and its 95% bootstrap interval (None where none is defined)."""
    values = values[~torch.isnan(values.double())]
    if values.numel() == 0:
        return None, None
    return metrics.median(values), list(metrics.bootstrap_ci(values, bootstrap, generator=gen, stat="median"))


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else value


def _row_slices(sizes: list[int]) -> list[slice]:
    starts = torch.tensor([0, *sizes]).cumsum(0).tolist()
    return [slice(a, b) for a, b in itertools.pairwise(starts)]


def _projections(settings: AnalysisConfig, seed: int, params: dict[str, torch.Tensor],
                 latents: dict[str, torch.Tensor], trajectory: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    """PCA and (optionally) UMAP of parameters and latents, one shared space per kind.

    Parameters are z-scored per coordinate over all groups first, so the head's large weights do
    not drown the normalization layers. The parameter PCA also places the denoising trajectory.
    """
    stacked = torch.cat([params[g].double() for g in names])
    mean, std = stacked.mean(0), stacked.std(0, correction=0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    basis = PCABasis.fit((stacked - mean) / std)

    def place(x: torch.Tensor) -> torch.Tensor:
        return basis.transform((x.double() - mean) / std)

    out = {f"{g}.params_pca": place(params[g]) for g in names}
    out |= {f"{g}.latent_pca": xy for g, xy in fit_projection(latents, "pca").items()}
    if settings.umap:
        for kind, groups in (("params", params), ("latent", latents)):
            umap = fit_projection(groups, "umap", seed=seed, n_neighbors=settings.umap_neighbors)
            out |= {f"{g}.{kind}_umap": xy for g, xy in umap.items()}
    if settings.trajectory and trajectory.numel():
        points, models, dim = trajectory.shape
        out["trajectory.params_pca"] = place(trajectory.reshape(points * models, dim)).reshape(points, models, 2)
    return out
