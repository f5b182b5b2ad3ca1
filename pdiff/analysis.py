"""Stage 7: did the generator make new, good models, or copy its training checkpoints?

Every group (training zoo, held-out checkpoints, generated, each baseline) goes through the same
protocol: accuracy with bootstrap intervals, behavioural similarity to the zoo (IoU of wrong
predictions), the nearest zoo model in parameter space and agreement with it, the ensemble gain,
and shared 2D projections of parameters and latents. Results go to analysis.safetensors; the
scorecard (one row per group) is also kept as JSON metadata for the CLI, the app and notebooks.
"""
from __future__ import annotations

import itertools
import math
from typing import Any

import torch

from . import metrics
from .config import RunConfig
from .projection import PCABasis, fit_projection
from .runs import RunDir, RunError
from .runtime import make_generator
from .stages import ANALYSIS, EVALUATION, GENERATED, load_generator, model_groups
from .training import Progress


def evaluated_groups(run: RunDir) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor, dict]:
    """(accuracy per group, predictions per group, labels, evaluation metadata)."""
    tensors, meta = run.load(EVALUATION)
    groups = meta.get("groups", [])
    missing = [g for g in groups if f"{g}.predictions" not in tensors]
    if "labels" not in tensors or missing or "zoo" not in groups:
        raise RunError(f"{run.path}/{EVALUATION} lacks predictions ({', '.join(missing) or 'zoo'}); "
                       f"redo evaluation with python -m pdiff run --out {run.path} --force evaluate")
    acc = {g: tensors[f"{g}.accuracy"] for g in groups}
    pred = {g: tensors[f"{g}.predictions"] for g in groups}
    return acc, pred, tensors["labels"], meta


def analyse_run(run: RunDir, config: RunConfig, device: torch.device, progress: Progress | None = None) -> dict[str, Any]:
    """Compute and store every analysis of a finished evaluation; returns the generated row."""
    report = progress or (lambda *_: None)
    acc, pred, labels, meta = evaluated_groups(run)
    params = model_groups(run)
    names = list(acc)
    sizes = [len(acc[g]) for g in names]
    out: dict[str, torch.Tensor] = {}

    report(0, 3, {"phase": "similarity"})
    all_pred = torch.cat([pred[g] for g in names]).to(device)
    iou = metrics.wrong_sets_iou(all_pred, labels.to(device)).cpu()  # (M, M)
    out["iou"] = iou
    zoo_cols = slice(0, sizes[0])  # "zoo" is always first
    for g, rows in zip(names, _row_slices(sizes)):
        to_zoo = iou[rows, zoo_cols]
        out[f"{g}.max_iou"], out[f"{g}.max_iou_index"] = metrics.max_similarity(to_zoo, exclude_self=g == "zoo")

    report(1, 3, {"phase": "neighbours"})
    zoo_params = params["zoo"].float()
    for g in names:
        exclude = g == "zoo"
        dist, index = metrics.nearest_neighbour(params[g].float(), zoo_params, exclude_self=exclude)
        out[f"{g}.nn_distance"], out[f"{g}.nn_index"] = dist, index
        out[f"{g}.neighbours"] = _k_nearest(params[g].float(), zoo_params, 3, exclude)
        agree = metrics.prediction_agreement(pred[g], pred["zoo"])  # (N_g, K)
        found = index >= 0  # a lone zoo model has no neighbour (index -1): NaN agreement
        out[f"{g}.nn_agreement"] = agree.gather(1, index.clamp(min=0)[:, None])[:, 0].where(found, float("nan"))

    report(2, 3, {"phase": "projections"})
    out |= _projections(run, config, params, names, device)

    scorecard = _scorecard(names, acc, out, meta, config)
    run.save(ANALYSIS, out, {"groups": names, "sizes": sizes, "scorecard": scorecard})
    report(3, 3, {})
    return {"scorecard_generated": scorecard.get("generated", {})}


def _row_slices(sizes: list[int]) -> list[slice]:
    starts = torch.tensor([0, *sizes]).cumsum(0).tolist()
    return [slice(a, b) for a, b in itertools.pairwise(starts)]


def _k_nearest(x: torch.Tensor, ref: torch.Tensor, k: int, exclude_self: bool) -> torch.Tensor:
    """(N, k) indices of the k nearest reference rows in L2 (for the weight heatmap)."""
    d = torch.cdist(x, ref)
    if exclude_self:
        d.fill_diagonal_(float("inf"))
    return d.topk(min(k, ref.shape[0] - int(exclude_self)), largest=False).indices


def _projections(run: RunDir, config: RunConfig, params: dict[str, torch.Tensor], names: list[str],
                 device: torch.device) -> dict[str, torch.Tensor]:
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

    generator = load_generator(run, config, device, with_denoiser=False)
    latents = {g: generator.encode(params[g]).float().cpu() for g in names}
    out = {f"{g}.params_pca": place(params[g]) for g in names}
    out |= {f"{g}.latent_pca": xy for g, xy in fit_projection(latents, "pca").items()}
    if config.analysis.umap:
        for kind, groups in (("params", params), ("latent", latents)):
            umap = fit_projection(groups, "umap", seed=config.seed, n_neighbors=config.analysis.umap_neighbors)
            out |= {f"{g}.{kind}_umap": xy for g, xy in umap.items()}
    trajectory = run.load(GENERATED)[0]["trajectory"]
    if trajectory.numel():
        points, models, dim = trajectory.shape
        out["trajectory.params_pca"] = place(trajectory.reshape(points * models, dim)).reshape(points, models, 2)
    return out


def _scorecard(names: list[str], acc: dict[str, torch.Tensor], out: dict[str, torch.Tensor], meta: dict,
               config: RunConfig) -> dict[str, dict[str, float]]:
    """One row per group: accuracy with 95% intervals, similarity to the zoo, ensemble gain."""
    ensembles = meta.get("ensemble_accuracy", {})
    card = {}
    for g in names:
        a = acc[g]
        row: dict[str, Any] = metrics.accuracy_summary(a)
        gen = make_generator(config.seed)
        row["mean_ci"] = list(metrics.bootstrap_ci(a, config.analysis.bootstrap, generator=gen))
        row["median_ci"] = list(metrics.bootstrap_ci(a, config.analysis.bootstrap, generator=gen, stat="median"))
        max_iou = _median_or_none(out[f"{g}.max_iou"])
        row["max_iou_median"] = max_iou
        row["novelty_median"] = None if max_iou is None else 1.0 - max_iou
        row["nn_distance_median"] = _median_or_none(out[f"{g}.nn_distance"])
        row["nn_agreement_median"] = _median_or_none(out[f"{g}.nn_agreement"])
        if g in ensembles:
            row["ensemble_accuracy"] = ensembles[g]
            row["ensemble_gain"] = ensembles[g] - row["mean"]
        card[g] = row
    return card


def _median_or_none(values: torch.Tensor) -> float | None:
    """The median, or None (JSON null) where it is undefined: a lone zoo model has no neighbour."""
    value = values.median().item()
    return None if math.isnan(value) else value
