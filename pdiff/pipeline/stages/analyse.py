"""Stage analyse: load what the evaluation measured and what each group is, and judge it (judge/analysis.py)."""
from __future__ import annotations

from typing import Any

import torch

from ...core.artifacts import ANALYSIS, GENERATED
from ...core.runtime import seed_everything
from ...judge.analysis import AnalysisInputs, analyse
from ..contract import StageContext
from ..loaders import load_codec, load_evaluation, model_groups


def run(ctx: StageContext) -> dict[str, Any]:
    """Similarity, neighbours, fidelity, projections and the scorecard of every group."""
    seed_everything(ctx.seed)
    evaluated = load_evaluation(ctx.run)
    params = model_groups(ctx.run)
    generated = ctx.run.load(GENERATED)[0]
    inputs = AnalysisInputs(evaluated.accuracy, evaluated.predictions, evaluated.mean_probs, evaluated.labels, params,
                            group_latents(ctx, params), generated["trajectory"])
    tensors, meta, headline = analyse(inputs, ctx.config.analysis, ctx.config.seed, ctx.device, ctx.progress)
    ctx.save(ANALYSIS, tensors, meta)
    return headline


def group_latents(ctx: StageContext, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each group's standardized latents: the encoder's view of its parameters, except for the
    generated models, whose latents are the ones the diffusion sampled (the encoder is not an
    exact inverse of the decoder, so re-encoding them would judge the autoencoder as well)."""
    codec = load_codec(ctx.run, ctx.config, ctx.device)
    latents = {g: codec.encode(vectors).float().cpu() for g, vectors in params.items()}
    if "generated" in latents:
        latents["generated"] = ctx.run.load(GENERATED)[0]["latents"].float()
    return latents
