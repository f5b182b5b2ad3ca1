"""Device, randomness and a stage's thread count, decided once at the edge (entry points, stage starts, tests)."""
from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch

from . import distributed
from .errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else CPU; an unavailable CUDA request is a clear error."""
    if name == "auto":
        if torch.cuda.is_available():  # one GPU per torchrun process
            return torch.device("cuda", distributed.current().local_rank)
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; use device=auto or cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices): the one seeding helper."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast(device: torch.device, precision: str = "fp32") -> contextlib.AbstractContextManager:
    """bf16 autocast on request (forward passes only); a no-op context for fp32."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


@contextlib.contextmanager
def stage_threads(count: int | None) -> Iterator[int]:
    """Run a stage with `count` intra-op threads (None: as set), then restore the count it found,
    so a stage never leaves its setting behind for the caller; yields the count in effect."""
    before = torch.get_num_threads()
    if count is not None and count != before:
        torch.set_num_threads(count)
    try:
        yield torch.get_num_threads()
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
