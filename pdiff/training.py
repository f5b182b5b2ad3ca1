"""One plain optimisation loop shared by the autoencoder and the denoiser.

Both stages do the same thing: draw a random batch, compute a loss, take an AdamW step under a
cosine schedule, and report progress. Keeping the loop in one place keeps them in step.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

Progress = Callable[[int, int, dict], None]  # (done, total, info)


@dataclass
class TrainHistory:
    """Losses recorded every `every` steps (about 200 points whatever the step count)."""

    loss: list[float] = field(default_factory=list)
    every: int = 1


def batch_index(n: int, batch_size: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Random rows (with replacement) drawn from `generator`, so a seed fixes the whole run."""
    return torch.randint(0, n, (batch_size,), generator=generator, device=generator.device).to(device)


def train_steps(model: nn.Module, loss_fn: Callable[[], torch.Tensor], steps: int, lr: float,
                weight_decay: float = 0.0, progress: Progress | None = None) -> TrainHistory:
    """Run `steps` AdamW updates of `loss_fn()` with cosine decay to 5% of `lr`."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=lr * 0.05)
    history = TrainHistory(every=max(1, steps // 200))
    model.train()
    for step in range(steps):
        loss = loss_fn()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % history.every == 0 or step == steps - 1:
            history.loss.append(loss.item())
            if progress is not None:
                progress(step + 1, steps, {"loss": history.loss[-1]})
    model.eval()
    return history
