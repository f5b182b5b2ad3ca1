"""Stage 1: train a classifier, then keep training only the target parameters and save a zoo.

Normalization layers run in eval mode during collection, so their running statistics stay the
trained classifier's: every checkpoint in the zoo then shares exactly the same frozen rest of
the network, which is what lets evaluation share that rest across all models.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..core import distributed
from ..core.config import ClassifierConfig, CollectConfig
from ..core.divergence import LossWatch
from ..core.runtime import autocast
from ..core.training import Progress
from .datasets import Dataset
from .params import ParamLayout, layout_of, read_vector, write_vector


@dataclass
class Zoo:
    params: torch.Tensor  # (K, D) target vectors in collection order
    steps: torch.Tensor  # (K,) optimizer step after which each was saved
    layout: ParamLayout


def _batches(dataset: Dataset, batch_size: int, generator: torch.Generator,
             device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled mini-batches, augmented when the dataset says how.

    Under torchrun every rank draws the same permutation and keeps its own share of each batch
    (a distributed sampler); augmentation draws from a rank-seeded generator of its own.
    """
    n = len(dataset.y_train)
    rank = distributed.current()
    augment_generator = torch.Generator().manual_seed(distributed.rank_seed(generator.initial_seed() + 1))
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            idx = order[start:start + batch_size][rank.rank::rank.world]
            x = dataset.x_train[idx]
            if dataset.augment is not None:
                x = dataset.augment(x, augment_generator)
            y = dataset.y_train[idx]
            if device.type == "cuda":  # page-locked host memory lets the copy overlap compute
                x, y = x.pin_memory(), y.pin_memory()
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def _cross_entropy_step(net: nn.Module, optimizer: torch.optim.Optimizer, batch: tuple[torch.Tensor, torch.Tensor],
                        device: torch.device, precision: str) -> torch.Tensor:
    """One optimizer step on the classification loss; the forward pass under optional autocast."""
    x, y = batch
    with autocast(device, precision):
        loss = F.cross_entropy(net(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def train_classifier(model: nn.Module, dataset: Dataset, config: ClassifierConfig, generator: torch.Generator,
                     progress: Progress | None = None, precision: str = "fp32") -> nn.Module:
    """Plain SGD with momentum and cosine decay; the model is returned in eval mode. A loss that
    blows up raises `divergence.Diverged` naming classifier.lr."""
    device = next(model.parameters()).device
    per_epoch = max(1, len(dataset.y_train) // config.batch_size)
    total = config.epochs * per_epoch
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=config.momentum > 0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total)
    batches = _batches(dataset, config.batch_size, generator, device)
    net = distributed.ddp(model)
    watch = LossWatch("classifier training", total, "classifier.lr")
    check_every = min(per_epoch, 50)
    model.train()
    for step in range(total):
        loss = _cross_entropy_step(net, optimizer, next(batches), device, precision)
        schedule.step()
        watch.step(step, loss)
        if step == 0 or (step + 1) % check_every == 0 or step + 1 == total:
            watch.check(step + 1, loss.item(), model.named_parameters())
        if progress is not None and ((step + 1) % per_epoch == 0 or step + 1 == total):
            progress(step + 1, total, {"loss": loss.item()})
    return model.eval()


def collect_checkpoints(model: nn.Module, dataset: Dataset, target: list[str], config: CollectConfig,
                        count: int, batch_size: int, generator: torch.Generator,
                        progress: Progress | None = None, precision: str = "fp32") -> Zoo:
    """Freeze all but `target`, keep training, and save `count` checkpoints of the target. A loss
    or checkpoint that blows up raises `divergence.Diverged` naming collect.lr."""
    device = next(model.parameters()).device
    layout = layout_of(model, target)
    chosen = set(target)
    for name, p in model.named_parameters():
        p.requires_grad_(name in chosen)
    params = [p for n, p in model.named_parameters() if n in chosen]
    if config.optimizer == "adamw":
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    model.eval()  # norm layers keep the classifier's running statistics (see module docstring)
    net = distributed.ddp(model)
    batches = _batches(dataset, batch_size, generator, device)
    vectors, steps = [], []
    total = count * config.steps_per_checkpoint
    watch = LossWatch("checkpoint collection", total, "collect.lr")
    for k in range(count):
        for i in range(config.steps_per_checkpoint):
            loss = _cross_entropy_step(net, optimizer, next(batches), device, precision)
            watch.step(k * config.steps_per_checkpoint + i, loss)
        vectors.append(read_vector(model, layout).cpu())
        watch.check((k + 1) * config.steps_per_checkpoint, loss.item(), [(f"checkpoint {k + 1}", vectors[-1])])
        steps.append((k + 1) * config.steps_per_checkpoint)
        if progress is not None:
            progress(k + 1, count, {"loss": loss.item()})
    for p in model.parameters():
        p.requires_grad_(True)
    return Zoo(torch.stack(vectors), torch.tensor(steps), layout)


def fresh_trajectory(model: nn.Module, start: torch.Tensor, dataset: Dataset, target: list[str],
                     config: CollectConfig, length: int, keep: int, batch_size: int, generator: torch.Generator,
                     progress: Progress | None = None, precision: str = "fp32") -> Zoo:
    """What fresh training gives: `keep` checkpoints, evenly spaced, of an independent SGD run of
    `length` checkpoints with the zoo's recipe from the zoo's starting point `start` (the target's
    flat vector), its data order drawn from `generator`. The generator never sees these: they are
    the yardstick for "as different from the training checkpoints as retraining would be"."""
    write_vector(model, layout_of(model, target), start.to(next(model.parameters()).device))
    run = collect_checkpoints(model, dataset, target, config, length, batch_size, generator, progress, precision)
    pick = torch.linspace(0, length - 1, keep).round().long().unique()
    return Zoo(run.params[pick], run.steps[pick], run.layout)


@torch.no_grad()
def reinit_target(model: nn.Module, fresh: nn.Module, target: list[str]) -> None:
    """Put the target parameters back to a fresh model's initial values (norm weights 1, biases
    0, linear layers as constructed), leaving everything else, buffers included, as trained.

    Collection then starts from chance and climbs to a trained model, so the zoo spans a range of
    quality: what a generator conditioned on accuracy needs to learn from."""
    params, initial = dict(model.named_parameters()), dict(fresh.named_parameters())
    for name in target:
        params[name].copy_(initial[name].to(params[name].device))


def heldout_mask(count: int, every: int) -> torch.Tensor:
    """Every `every`-th checkpoint (1-based: the every-th, 2*every-th, ...) is held out."""
    mask = torch.zeros(count, dtype=torch.bool)
    if every > 0:
        mask[every - 1::every] = True
    return mask
