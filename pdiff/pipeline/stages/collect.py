"""Stage collect: train the classifier, then save K checkpoints of the target parameters (the zoo)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...core.artifacts import BASE, ZOO
from ...core.errors import RunError
from ...core.runtime import make_generator, seed_everything
from ...core.training import Progress
from ...judge.evaluate import BatchedEvaluator
from ...zoo.classifiers import build_classifier
from ...zoo.collect import collect_checkpoints, fresh_trajectory, heldout_mask, reinit_target, train_classifier
from ...zoo.datasets import Dataset
from ...zoo.params import layout_of, read_vector, select_target
from ..contract import StageContext


def run(ctx: StageContext) -> dict[str, Any]:
    """Train the classifier (per seed), save K checkpoints of the target parameters, and the
    checkpoints of an independent SGD run from the same start (the fresh-training reference)."""
    config, c = ctx.config, ctx.config.collect
    dataset = ctx.dataset()
    counts = [len(part) for part in torch.arange(c.num_checkpoints).chunk(c.seeds)]
    vectors, steps, seed_index, base_acc = [], [], [], []
    fresh = None
    for s, count in enumerate(counts):
        seed_everything(ctx.seed + 7919 * s)
        generator = make_generator(ctx.seed + 7919 * s)
        model = build_classifier(config.classifier.arch, dataset.input_shape, dataset.num_classes).to(ctx.device)
        target = select_target(model, c.target)
        _check_shared_base(model, target, c.seeds)  # before any training: fail fast
        train_classifier(model, dataset, config.classifier, generator,
                         _phase(ctx, f"classifier {s + 1}/{c.seeds}"), config.precision)
        base_acc.append(_accuracy(model, dataset, ctx.device))  # the classifier, before collection
        if s == 0:
            base_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if c.reinit:  # a zoo from chance to trained (see collect.reinit_target)
            torch.manual_seed(ctx.seed + 7919 * s + 1)
            reinit_target(model, build_classifier(config.classifier.arch, dataset.input_shape, dataset.num_classes),
                          target)
        start = read_vector(model, layout_of(model, target))
        zoo = collect_checkpoints(model, dataset, target, c, count, config.classifier.batch_size,
                                  generator, _phase(ctx, f"checkpoints {s + 1}/{c.seeds}"), config.precision)
        vectors.append(zoo.params)
        steps.append(zoo.steps)
        seed_index.append(torch.full((count,), s))
        if s == 0 and c.fresh:
            if c.fresh_reinit:  # fresh training from a new initialisation of the target, not the zoo's start
                torch.manual_seed(fresh_seed(ctx.seed, c.seeds))
                other = build_classifier(config.classifier.arch, dataset.input_shape, dataset.num_classes)
                start = read_vector(other, layout_of(other, target))
            fresh = fresh_trajectory(model, start, dataset, target, c, count, min(c.fresh, count),
                                     config.classifier.batch_size,
                                     make_generator(fresh_seed(ctx.seed, c.seeds)), _phase(ctx, "fresh SGD run"),
                                     config.precision)
    params = torch.cat(vectors)
    heldout = heldout_mask(len(params), c.heldout_every)
    base = _with_state(model, base_state)
    accuracy = BatchedEvaluator(base, zoo.layout, dataset.x_test, dataset.y_test).evaluate_sharded(params).accuracy
    val_accuracy = BatchedEvaluator(base, zoo.layout, dataset.x_val, dataset.y_val).evaluate_sharded(params).accuracy
    meta = {"layout": zoo.layout.to_json(), "target": zoo.layout.names, "input_shape": list(dataset.input_shape),
            "num_classes": dataset.num_classes,
            "splits": {"train": len(dataset.y_train), "validation": len(dataset.y_val), "test": len(dataset.y_test)}}
    tensors = {"params": params, "steps": torch.cat(steps), "seed": torch.cat(seed_index),
               "heldout": heldout.to(torch.uint8), "accuracy": accuracy, "val_accuracy": val_accuracy}
    if fresh is not None:
        tensors |= {"fresh.params": fresh.params, "fresh.steps": fresh.steps}
    ctx.save(BASE, base_state, meta)
    ctx.save(ZOO, tensors, meta)
    return {"dim": zoo.layout.dim, "num_checkpoints": len(params), "classifier_accuracy": base_acc[0],
            "zoo_accuracy_mean": accuracy.mean().item(), "heldout": int(heldout.sum()),
            "fresh": 0 if fresh is None else len(fresh.params)} | {f"{k}_samples": v for k, v in meta["splits"].items()}


def fresh_seed(stage_seed: int, seeds: int) -> int:
    """The data-order seed of the fresh SGD run: one that no zoo trajectory of the run uses."""
    return stage_seed + 7919 * seeds + 1


def _with_state(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    model.load_state_dict(state)
    return model.eval()


def _phase(ctx: StageContext, phase: str) -> Progress:
    """The stage's progress callback with a phase label, fixed now (not when a loop moves on)."""
    return lambda done, total, info: ctx.progress(done, total, {"phase": phase, **info})


def _check_shared_base(model: nn.Module, target: list[str], seeds: int) -> None:
    """With several seeds the non-target weights differ, so only whole-network targets make sense."""
    if seeds == 1:
        return
    rest = [k for k in model.state_dict() if k not in set(target) and not k.endswith("num_batches_tracked")]
    if rest:
        raise RunError(f"collect.seeds > 1 needs a target covering every parameter and no buffers "
                       f"(models from different seeds share nothing else); not covered: {', '.join(rest[:4])}")


@torch.no_grad()
def _accuracy(model: nn.Module, dataset: Dataset, device: torch.device) -> float:
    preds = torch.cat([model(dataset.x_test[i:i + 1024].to(device)).argmax(-1).cpu()
                       for i in range(0, len(dataset.y_test), 1024)])
    return (preds == dataset.y_test).float().mean().item() * 100
