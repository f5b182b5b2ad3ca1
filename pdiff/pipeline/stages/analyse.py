"""Stage analyse: load what the evaluation measured and what each group is, and judge it (judge/analysis.py).

Parameters are measured between neuron-aligned models when the zoo mixes runs (judge/matching.py),
latents only where the run has a generator, and a zoo of several runs is also described run by
run (judge/runs.py).
"""
from __future__ import annotations

from typing import Any

import torch

from ...core.artifacts import ANALYSIS, AUTOENCODER, GENERATED, ZOO
from ...core.runtime import seed_everything
from ...judge import matching
from ...judge.analysis import AnalysisInputs, analyse
from ...judge.runs import run_clusters
from ...zoo.alignment import permutation_spec, run_representatives
from ...zoo.classifiers import build_classifier
from ...zoo.params import ParamLayout
from ..contract import StageContext
from ..loaders import load_codec, load_evaluation, load_zoo, model_groups


def run(ctx: StageContext) -> dict[str, Any]:
    """Similarity, neighbours, fidelity, projections and the scorecard of every group."""
    seed_everything(ctx.seed)
    evaluated = load_evaluation(ctx.run)
    params = model_groups(ctx.run)
    generated = ctx.run.load(GENERATED)[0] if ctx.run.has(GENERATED) else {}
    trajectory = generated.get("trajectory", torch.empty(0))
    zoo, zoo_meta = load_zoo(ctx.run), ctx.run.load(ZOO)[1]
    alignment = choose_alignment(ctx, zoo, zoo_meta)
    measured, trajectory = aligned(ctx, params, trajectory, zoo, zoo_meta, alignment)
    inputs = AnalysisInputs(evaluated.accuracy, evaluated.predictions, evaluated.mean_probs, evaluated.labels,
                            measured, group_latents(ctx, params), trajectory,
                            params if alignment.aligned else None)
    tensors, meta, headline = analyse(inputs, ctx.config.analysis, ctx.config.seed, ctx.device, ctx.progress)
    distances = "aligned" if alignment.aligned else "raw"
    for row in meta["scorecard"].values():
        row["distances"] = distances
    runs = zoo["seed"][~zoo["heldout"]]
    meta |= {"alignment": alignment.record(), "fresh_note": zoo_meta.get("fresh_note") or "",
             "runs": run_clusters(runs, run_names(zoo_meta, runs), evaluated.accuracy["zoo"],
                                  tensors["iou"][: len(runs), : len(runs)], measured["zoo"])}
    ctx.save(ANALYSIS, tensors, meta)
    return headline | {"distances": distances}


def run_names(meta: dict[str, Any], runs: torch.Tensor) -> list[str | None]:
    """The name of each run index: an imported zoo's run ids, a collected zoo's seeds."""
    stored = meta.get("runs")
    if isinstance(stored, list):
        return [None if r is None else str(r) for r in stored]
    return [f"seed {i}" for i in range(int(runs.max()) + 1)] if len(runs) else []


def choose_alignment(ctx: StageContext, zoo: dict[str, torch.Tensor], meta: dict[str, Any]) -> matching.Alignment:
    """Whether parameters are measured between aligned models (analysis.align, judge/matching.py)."""
    runs = zoo["seed"][~zoo["heldout"]]
    if "fresh.seed" in zoo:  # held-out runs of an imported zoo: another run, whatever the zoo holds
        runs = torch.cat([runs, zoo["fresh.seed"]])
    mode = ctx.config.analysis.align
    if mode == "off" or (mode == "auto" and not matching.mixes_runs(runs)):
        return matching.choose(mode, runs, "", [])
    model = build_classifier(ctx.config.classifier.arch, tuple(meta["input_shape"]), meta["num_classes"])
    try:
        spec: Any = permutation_spec(model)
    except ValueError as exc:
        spec = str(exc)
    return matching.choose(mode, runs, spec, ParamLayout.from_json(meta["layout"]).names, reference_index(zoo))


def reference_index(zoo: dict[str, torch.Tensor]) -> int:
    """The zoo row everything is aligned to: the last training checkpoint of the zoo's first run
    (the reference the import aligned to as well)."""
    return int(run_representatives(zoo["seed"][~zoo["heldout"]])[0])


def aligned(ctx: StageContext, params: dict[str, torch.Tensor], trajectory: torch.Tensor, zoo: dict[str, torch.Tensor],
            meta: dict[str, Any], alignment: matching.Alignment) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Every group's vectors (and the trajectory's) aligned to the reference when `alignment` says
    so: the zoo's and the fresh reference's checkpoints run by run, the other groups model by model."""
    if not alignment.aligned:
        return params, trajectory
    model = build_classifier(ctx.config.classifier.arch, tuple(meta["input_shape"]), meta["num_classes"])
    layout = ParamLayout.from_json(meta["layout"])
    groups = dict(params) | ({"trajectory": trajectory.flatten(0, 1)} if trajectory.numel() else {})
    runs = {"zoo": zoo["seed"][~zoo["heldout"]]}
    if "fresh" in params:  # an imported zoo's held-out runs, or collect's one fresh SGD run
        runs["fresh"] = zoo.get("fresh.seed", torch.zeros(len(params["fresh"]), dtype=torch.long))
    reference = params["zoo"][reference_index(zoo)]
    out = matching.align_groups(groups, runs, reference, permutation_spec(model), layout, ctx.seed)
    moved = out.pop("trajectory", None)
    return out, trajectory if moved is None else moved.reshape(trajectory.shape)


def group_latents(ctx: StageContext, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each group's standardized latents: the encoder's view of its parameters, except for the
    generated models, whose latents are the ones the diffusion sampled (the encoder is not an
    exact inverse of the decoder, so re-encoding them would judge the autoencoder as well).
    None without a generator ({})."""
    if not ctx.run.has(AUTOENCODER):
        return {}
    codec = load_codec(ctx.run, ctx.config, ctx.device)
    latents = {g: codec.encode(vectors).float().cpu() for g, vectors in params.items()}
    if "generated" in latents:
        latents["generated"] = ctx.run.load(GENERATED)[0]["latents"].float()
    return latents
