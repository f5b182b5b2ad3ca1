"""Training that blows up stops at once, and says which key to lower.

A learning rate far too high makes a loss jump by orders of magnitude, then overflow to inf and
NaN; the weights follow. Left alone, every later stage would run on NaN weights and record a
chance-level result as "done". Each training loop keeps a `LossWatch`: per step it notes, on the
loss's own device and without waiting for it, the first step whose loss is not finite or is more
than `BLOWUP_FACTOR` times its starting value; at the points where the loop reads the loss
anyway (progress reports, the end) it checks that note and the parameters, and raises
`Diverged`. The pipeline turns `Diverged` into one line naming the stage, the step and the key
to lower, and records the stage as failed: nothing is saved as finished (see also
`check_finite`, which guards every artifact a stage saves).
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch

# A loss a million times its starting value (or its scale, 1, if it started lower) has diverged;
# spikes that recover (seen with learning rates far above the defaults) stay orders of magnitude below.
BLOWUP_FACTOR = 1e6


class Diverged(RuntimeError):
    """A training loop met a non-finite or exploding loss or parameter."""

    def __init__(self, what: str, step: int | None, total: int | None, detail: str, key: str = "") -> None:
        self.what, self.step, self.total, self.detail, self.key = what, step, total, detail, key
        where = f" at step {step} of {total}" if step is not None else ""
        super().__init__(f"{what} blew up{where}: {detail}")


class LossWatch:
    """The first bad step of one training loop, tracked on the device (no sync per step)."""

    def __init__(self, what: str, total: int, key: str = "") -> None:
        self.what, self.total, self.key = what, total, key
        self.first_bad: torch.Tensor | None = None
        self.limit: float | None = None

    def step(self, step: int, loss: torch.Tensor) -> None:
        """Note `step` if its loss is bad; costs two small device ops, never a sync."""
        value = loss.detach().float()
        bad = ~torch.isfinite(value)
        if self.limit is not None:
            bad = bad | (value > self.limit)
        if self.first_bad is None:
            self.first_bad = torch.full((), -1, dtype=torch.long, device=value.device)
        self.first_bad = torch.where(bad & (self.first_bad < 0), step + 1, self.first_bad)

    def check(self, step: int, loss: float, params: Iterable[tuple[str, torch.Tensor]] = ()) -> None:
        """After `step` steps with last loss `loss`: raise `Diverged` if a step so far was bad or
        a parameter is not finite. Syncs once; call it where the loop reads the loss anyway."""
        first = int(self.first_bad) if self.first_bad is not None else -1
        if first >= 0 or not math.isfinite(loss):
            if not math.isfinite(loss):
                detail = f"the loss is {loss}"
            elif self.limit is not None and loss > self.limit:
                detail = f"the loss reached {loss:.3g}, over {BLOWUP_FACTOR:.0e} times its start"
            else:
                detail = (f"the loss left the finite range or passed {BLOWUP_FACTOR:.0e} times its start "
                          f"(now {loss:.3g})")
            raise Diverged(self.what, first if first >= 0 else step, self.total, detail, self.key)
        if self.limit is None:
            self.limit = BLOWUP_FACTOR * max(abs(loss), 1.0)
        for name, value in params:
            if value.is_floating_point() and not torch.isfinite(value.detach()).all():
                raise Diverged(self.what, step, self.total, f"parameter {name} is no longer finite", self.key)


def check_finite(artifact: str, tensors: dict[str, torch.Tensor]) -> None:
    """Raise `Diverged` when a floating tensor about to be saved holds NaN or inf."""
    for key, value in tensors.items():
        if value.is_floating_point() and value.numel() and not torch.isfinite(value).all():
            bad = (~torch.isfinite(value)).sum().item()
            raise Diverged("its result", None, None, f"{artifact} would hold {bad} non-finite value(s) in {key!r}")
