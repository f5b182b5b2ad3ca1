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
from ...zoo.collect import collect_checkpoints, heldout_mask, reinit_target, train_classifier
from ...zoo.datasets import Dataset
from ...zoo.params import select_target
from ..contract import StageContext


def run(ctx: StageContext) -> dict[str, Any]:
    """Train the classifier (per seed), then save K checkpoints of the target parameters."""
    config = ctx.config
    dataset = ctx.dataset()
    seeds = config.collect.seeds
    counts = [len(part) for part in torch.arange(config.collect.num_checkpoints).chunk(seeds)]
    vectors, steps, seed_index, base_acc = [], [], [], []
    for s, count in enumerate(counts):
        seed_everything(ctx.seed + 7919 * s)
        generator = make_generator(ctx.seed + 7919 * s)
        model = build_classifier(config.classifier.arch, dataset.input_shape, dataset.num_classes).to(ctx.device)
        target = select_target(model, config.collect.target)
        _check_shared_base(model, target, seeds)  # before any training: fail fast
        train_classifier(model, dataset, config.classifier, generator,
                         _phase(ctx, f"classifier {s + 1}/{seeds}"), config.precision)
        base_acc.append(_accuracy(model, dataset, ctx.device))  # the classifier, before collection
        if s == 0:
            base_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if config.collect.reinit:  # a zoo from chance to trained (see collect.reinit_target)
            torch.manual_seed(ctx.seed + 7919 * s + 1)
            reinit_target(model, build_classifier(config.classifier.arch, dataset.input_shape, dataset.num_classes),
                          target)
        zoo = collect_checkpoints(model, dataset, target, config.collect, count, config.classifier.batch_size,
                                  generator, _phase(ctx, f"checkpoints {s + 1}/{seeds}"), config.precision)
        vectors.append(zoo.params)
        steps.append(zoo.steps)
        seed_index.append(torch.full((count,), s))
    params = torch.cat(vectors)
    heldout = heldout_mask(len(params), config.collect.heldout_every)
    evaluator = BatchedEvaluator(_with_state(model, base_state), zoo.layout, dataset.x_test, dataset.y_test)
    accuracy = evaluator.evaluate_sharded(params).accuracy
    meta = {"layout": zoo.layout.to_json(), "target": zoo.layout.names, "input_shape": list(dataset.input_shape),
            "num_classes": dataset.num_classes}
    ctx.save(BASE, base_state, meta)
    ctx.save(ZOO, {"params": params, "steps": torch.cat(steps), "seed": torch.cat(seed_index),
                   "heldout": heldout.to(torch.uint8), "accuracy": accuracy}, meta)
    return {"dim": zoo.layout.dim, "num_checkpoints": len(params), "classifier_accuracy": base_acc[0],
            "zoo_accuracy_mean": accuracy.mean().item(), "heldout": int(heldout.sum())}


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
