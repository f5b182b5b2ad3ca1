"""Stage evaluate: every model of every group on the test split, batched."""
from __future__ import annotations

from typing import Any

import torch

from ...core.artifacts import EVALUATION, GENERATED
from ...core.training import Progress
from ...judge.evaluate import BatchedEvaluator
from ...zoo.params import clamp_variances
from ..contract import StageContext
from ..loaders import load_task, model_groups


def run(ctx: StageContext) -> dict[str, Any]:
    """Batched accuracy, test predictions and ensemble probabilities of every group, and the
    accuracy along the denoising trajectory."""
    task = load_task(ctx.run, ctx.config, ctx.device, ctx.dataset())
    e = ctx.config.evaluate
    evaluator = BatchedEvaluator(task.model, task.layout, task.dataset.x_test, task.dataset.y_test,
                                 e.chunk_size, e.batch_size, ctx.config.precision)
    groups = model_groups(ctx.run)
    out: dict[str, torch.Tensor] = {"labels": task.dataset.y_test}
    total = sum(len(v) for v in groups.values())
    done = 0
    for name, vectors in groups.items():
        vectors = clamp_variances(vectors, task.layout)
        result = evaluator.evaluate_sharded(vectors, _group_progress(ctx, name, done, total))
        done += len(vectors)
        out[f"{name}.accuracy"], out[f"{name}.predictions"] = result.accuracy, result.predictions
        out[f"{name}.mean_probs"] = result.mean_probs
    generated = ctx.run.load(GENERATED)[0] if ctx.run.has(GENERATED) else {}
    trajectory = generated.get("trajectory", torch.empty(0))
    if trajectory.numel():
        points, models, dim = trajectory.shape
        flat = clamp_variances(trajectory.reshape(points * models, dim), task.layout)
        out["trajectory.accuracy"] = evaluator.evaluate_sharded(flat).accuracy.reshape(points, models)
        out["trajectory.steps"] = generated["trajectory_steps"]
    ctx.save(EVALUATION, out, {"groups": list(groups), "chunk_size": evaluator.chunk_size})
    shown = [g for g in ("zoo", "generated") if g in groups]
    return {f"{g}_median": out[f"{g}.accuracy"].median().item() for g in shown} | {
        f"{g}_best": out[f"{g}.accuracy"].max().item() for g in shown}


def _group_progress(ctx: StageContext, group: str, offset: int, total: int) -> Progress:
    """Progress of one group's evaluation as part of all groups' models."""
    return lambda done, _, info: ctx.progress(offset + done, total, {"group": group})
