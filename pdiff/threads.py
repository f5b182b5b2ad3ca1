"""CPU threads that stay fast on a busy machine.

PyTorch's OpenMP threads spin while they wait for each other. On an idle machine that is what
makes two threads faster than one; on a busy one a spinning thread burns the core its partner
needs, and the run slows far more than its share of the cores explains (measured on 2 cores
beside one other process: 200 autoencoder steps took 12 s with one thread, 51 s with two
spinning, 28 s with two waiting passively). So pdiff sets `OMP_WAIT_POLICY=PASSIVE` (threads
sleep instead of spinning) when it is imported before torch, unless the variable is already set;
it must be in place before torch loads its OpenMP runtime, so a process that imported torch
first keeps its policy (and the run records which it got).

The thread count stays torch's default, one per core: the kernel shares a busy CPU per thread,
so fewer threads get a smaller share, not a faster run (benchmarks/bench_contention.py: beside
two busy loops, two passive threads beat a thread count lowered to the free cores). A count,
or "auto" (the cores idle just before each stage), can be asked for with `--threads`,
`PDIFF_THREADS` or `OMP_NUM_THREADS`.

Float reductions depend on the thread count, so runs are bit-identical for the same seed *and*
the same thread count; every stage records the count it ran with.
"""
from __future__ import annotations

import os
import sys
import time

WAIT_POLICY = "OMP_WAIT_POLICY"
THREADS_ENV = "PDIFF_THREADS"


_policy_in_effect = "unknown"


def prefer_passive_wait() -> None:
    """Set OMP_WAIT_POLICY=PASSIVE unless the user set it or torch is already loaded (too late)."""
    global _policy_in_effect
    if "torch" in sys.modules:
        _policy_in_effect = os.environ.get(WAIT_POLICY, "default") + " (torch was loaded before pdiff)"
        return
    os.environ.setdefault(WAIT_POLICY, "PASSIVE")
    _policy_in_effect = os.environ[WAIT_POLICY]


def wait_policy() -> str:
    """The OpenMP wait policy torch's threads run with (as far as this process can tell)."""
    return _policy_in_effect if _policy_in_effect != "unknown" else os.environ.get(WAIT_POLICY, "default")


def requested_threads(cli_value: int | str | None = None) -> int | str | None:
    """What the user asked for: a count, "auto", or None (leave torch's setting alone).

    Order: the CLI flag, `PDIFF_THREADS`, then `OMP_NUM_THREADS` (a fixed count); else None.
    """
    for value in (cli_value, os.environ.get(THREADS_ENV), os.environ.get("OMP_NUM_THREADS")):
        if value is None or str(value).strip() == "":
            continue
        text = str(value).strip().lower()
        if text == "auto":
            return "auto"
        if text.isdigit() and int(text) > 0:
            return int(text)
        raise ValueError(f"threads must be a positive count or 'auto', got {value!r}")
    return None


def physical_cores() -> int:
    """Cores this process may use (affinity), the most threads that can help."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all cores since boot, or None without /proc/stat."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return idle, sum(fields[:8])


def free_cores(window: float = 0.25) -> float | None:
    """How many cores stood idle over the last `window` seconds (None where it cannot be read)."""
    before = _cpu_times()
    if before is None:
        return None
    time.sleep(window)
    after = _cpu_times()
    if after is None or after[1] <= before[1]:
        return None
    idle_share = (after[0] - before[0]) / (after[1] - before[1])
    return idle_share * (os.cpu_count() or 1)


def auto_threads() -> int:
    """Threads for the next stage: the free cores, rounded, within [1, physical cores]."""
    free = free_cores()
    cores = physical_cores()
    if free is None:
        return cores
    return int(min(cores, max(1, round(free))))


def apply(request: int | str | None) -> dict[str, object]:
    """Set torch's intra-op threads as requested; returns what is in effect, for the manifest."""
    import torch

    if request == "auto":
        torch.set_num_threads(auto_threads())
    elif isinstance(request, int):
        torch.set_num_threads(request)
    return {"threads": torch.get_num_threads(), "request": request if request is not None else "default",
            "omp_wait_policy": wait_policy()}
