"""Scale-out with PyTorch's own distributed engine, for runs launched under `torchrun`.

One process per device. torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; `setup()` then joins the
process group (NCCL on GPUs, gloo on CPU). Without those variables everything here is a no-op
for a single process, so library code calls these helpers unconditionally.

The scheme: model initialisation uses the same seed on every rank (and DDP broadcasts rank 0's
weights anyway); data order uses one permutation shared by all ranks, each taking its own
shard; random draws that should differ per rank (batches, sampled latents) are seeded with the
rank added. Only rank 0 writes the run directory.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

_NARROW = (torch.bool, torch.int8, torch.uint8, torch.int16)
TIMEOUT = datetime.timedelta(minutes=int(os.environ.get("PDIFF_DIST_TIMEOUT_MIN", "30")))


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    world: int = 1
    local_rank: int = 0


def setup() -> Rank:
    """Join the process group when launched by torchrun; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend, timeout=TIMEOUT)
    return current()


def current() -> Rank:
    if not dist.is_available() or not dist.is_initialized():
        return Rank()
    return Rank(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def is_main() -> bool:
    return current().rank == 0


def barrier() -> None:
    if current().world > 1:
        dist.barrier()


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(n: int) -> slice:
    """This rank's contiguous share of n items (the first n % world ranks get one more)."""
    r = current()
    base, extra = divmod(n, r.world)
    start = r.rank * base + min(r.rank, extra)
    return slice(start, start + base + (r.rank < extra))


def rank_seed(seed: int) -> int:
    """Seed for draws that must differ across ranks; equals `seed` on rank 0 (and single process)."""
    return seed + 1_000_003 * current().rank


def gather_rows(part: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's rows in rank order (shards may differ in length by one)."""
    r = current()
    if r.world == 1:
        return part
    device = _comm_device()
    sizes = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(r.world)]
    dist.all_gather(sizes, torch.tensor([len(part)], device=device))
    longest = int(max(s.item() for s in sizes))
    wire = torch.int32 if part.dtype in _NARROW else part.dtype  # gloo has no 8/16-bit integers
    padded = torch.zeros(longest, *part.shape[1:], dtype=wire, device=device)
    padded[: len(part)] = part.to(device, wire)
    chunks = [torch.empty_like(padded) for _ in range(r.world)]
    dist.all_gather(chunks, padded)
    return torch.cat([c[: int(s.item())] for c, s in zip(chunks, sizes)]).to(part.device, part.dtype)


def sum_all(value: torch.Tensor) -> torch.Tensor:
    """Element-wise sum over ranks."""
    if current().world == 1:
        return value
    out = value.to(_comm_device()).clone()
    dist.all_reduce(out)
    return out.to(value.device)


def ddp(model: nn.Module) -> nn.Module:
    """Wrap for data-parallel training when running distributed; the model itself otherwise."""
    if current().world == 1:
        return model
    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def _comm_device() -> torch.device:
    """NCCL only moves CUDA tensors; gloo moves CPU tensors."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
