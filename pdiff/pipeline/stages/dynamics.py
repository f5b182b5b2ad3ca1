"""Stage dynamics: models sampled from each denoiser snapshot, judged like the final generator
(judge/dynamics.py): when along training do they become good models, and when do they start copying?"""
from __future__ import annotations

from typing import Any

import torch

from ...core.artifacts import ANALYSIS, DYNAMICS
from ...core.runtime import make_generator, seed_everything
from ...judge.dynamics import Reference, per_model, snapshot_record
from ...judge.evaluate import BatchedEvaluator
from ..contract import StageContext
from ..loaders import load_codec, load_evaluation, load_generator, load_task, snapshot_steps, training_rows


def run(ctx: StageContext) -> dict[str, Any]:
    """Sample `analysis.snapshot_models` models from every snapshot with the run's own sampler
    (over `analysis.snapshot_steps` steps: a respaced DDPM, DDIM or flow's, so eight snapshots cost
    a fraction of one full sampling) and the same noise, evaluate them, and place them on the
    run's ruler."""
    seed_everything(ctx.seed)
    steps = snapshot_steps(ctx.run)
    if not steps:
        ctx.save(DYNAMICS, {"steps": torch.zeros(0, dtype=torch.long)}, {"snapshots": []})
        return {"snapshots": 0}
    reference = _reference(ctx)
    task = load_task(ctx.run, ctx.config, ctx.device, ctx.dataset())
    evaluator = BatchedEvaluator(task.model, task.layout, task.dataset.x_test, task.dataset.y_test,
                                 ctx.config.evaluate.chunk_size, ctx.config.evaluate.batch_size, ctx.config.precision)
    s, a = ctx.config.sample, ctx.config.analysis
    steps_each = a.snapshot_steps or s.steps
    records, columns = [], {"accuracy": [], "max_iou": [], "nn_distance": []}
    for i, step in enumerate(steps):
        ctx.progress(i, len(steps), {"phase": f"snapshot at step {step}"})
        generator = load_generator(ctx.run, ctx.config, ctx.device, snapshot=step)
        samples = generator.sample(a.snapshot_models, make_generator(ctx.seed, ctx.device), s.sampler, steps_each, s.eta,
                                   clip=s.clip_x0, accuracy=s.accuracy if s.accuracy >= 0 else None,
                                   guidance=s.guidance)
        evaluation = evaluator.evaluate(samples.params)
        models = per_model(evaluation.accuracy, evaluation.predictions, samples.params, reference)
        record = snapshot_record(models, samples.latents, reference, a.bootstrap, ctx.config.seed)
        records.append({"step": step} | record)
        for key, column in columns.items():
            column.append(models[key])
    ctx.progress(len(steps), len(steps), {})
    tensors = {"steps": torch.tensor(steps)} | {key: torch.stack(values) for key, values in columns.items()}
    ctx.save(DYNAMICS, tensors, {"snapshots": records, "sampler": s.sampler, "sampling_steps": steps_each,
                                 "models": a.snapshot_models})
    last = records[-1]
    return {"snapshots": len(steps), "final_answer": last["answer"], "final_position": last["position"]}


def _reference(ctx: StageContext) -> Reference:
    """The training checkpoints and the ruler's anchors, as the analysis measured them."""
    evaluated = load_evaluation(ctx.run)
    analysis = ctx.run.load(ANALYSIS)[0]
    anchors = {g: {"behaviour": analysis[f"{g}.max_iou"], "parameters": analysis[f"{g}.nn_distance"]}
               for g in ("copies", "fresh") if f"{g}.max_iou" in analysis}
    zoo = training_rows(ctx.run)
    labels, zoo_predictions = evaluated.labels, evaluated.predictions["zoo"]
    errors = (zoo_predictions != labels).sum(1).double().median().item()
    return Reference(labels, zoo_predictions, zoo, load_codec(ctx.run, ctx.config, ctx.device).encode(zoo).float().cpu(),
                     evaluated.accuracy["zoo"], anchors, errors)
