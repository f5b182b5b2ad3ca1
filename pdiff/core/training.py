"""One plain optimisation loop shared by the autoencoder and the denoiser.

Both stages do the same thing: draw a random batch, compute a loss, take an AdamW step under a
cosine schedule, and report progress. Keeping the loop in one place keeps them in step.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from . import distributed
from .divergence import LossWatch
from .runtime import autocast

Progress = Callable[[int, int, dict], None]  # (done, total, info)


@dataclass
class TrainHistory:
    """Losses recorded every `every` steps (about 200 points whatever the step count)."""

    loss: list[float] = field(default_factory=list)
    every: int = 1


def batch_index(n: int, batch_size: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Random rows (with replacement) drawn from `generator`, so a seed fixes the whole run.

    Under torchrun each rank draws `batch_size / world` rows from its own rank-seeded generator,
    so the global batch keeps its size.
    """
    per_rank = -(-batch_size // distributed.current().world)
    return torch.randint(0, n, (per_rank,), generator=generator, device=generator.device).to(device)


def train_steps(model: nn.Module, loss_fn: Callable[[nn.Module], torch.Tensor], steps: int, lr: float,
                weight_decay: float = 0.0, progress: Progress | None = None, precision: str = "fp32",
                after_step: Callable[[int, nn.Module], None] | None = None) -> TrainHistory:
    """Run `steps` AdamW updates of `loss_fn(net)` with cosine decay to 5% of `lr`.

    `after_step(done, model)` is called after every update (e.g. to keep snapshots of the weights).

    `net` is the model itself, or its DistributedDataParallel wrapper under torchrun: the loss
    must call `net`, so that gradients are averaged across ranks. With precision "bf16" the
    forward pass runs under autocast; backward and the optimizer step stay outside it. A loss or
    parameter that blows up (NaN, inf, a million times its start) raises `divergence.Diverged`.
    """
    device = next(model.parameters()).device
    net = distributed.ddp(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=lr * 0.05)
    history = TrainHistory(every=max(1, steps // 200))
    watch = LossWatch("training", steps)
    model.train()
    for step in range(steps):
        with autocast(device, precision):
            loss = loss_fn(net)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        watch.step(step, loss)
        if step % history.every == 0 or step == steps - 1:
            history.loss.append(loss.item())
            watch.check(step + 1, history.loss[-1], model.named_parameters())
            if progress is not None:
                progress(step + 1, steps, {"loss": history.loss[-1]})
        if after_step is not None:
            after_step(step + 1, model)
    model.eval()
    return history


def log_spaced_steps(total: int, count: int) -> list[int]:
    """`count` training steps spaced evenly on a log scale from a hundredth of `total` to `total`
    (rounded, without repeats; the last is always `total`): the moments a run keeps snapshots of.
    Log spacing, because what a network learns first changes fastest."""
    if count <= 0 or total <= 0:
        return []
    first = max(1, total // 100)
    if count == 1 or first == total:
        return [total]
    ratio = (total / first) ** (1 / (count - 1))
    steps = sorted({min(total, round(first * ratio**i)) for i in range(count)} | {total})
    return steps
