"""CPU threads that stay fast on a busy machine, and fast on an idle one.

PyTorch's OpenMP threads spin while they wait for each other. On an idle machine that is what
makes two threads faster than one: the small matrix products of this project's training steps
hand work between threads every few microseconds, and a sleeping thread takes longer to wake
than the work takes (2,000 autoencoder steps on 2 idle cores: 6-7 s spinning, 12-25 s with
`OMP_WAIT_POLICY=PASSIVE`). On a busy machine a spinning thread burns the core its partner
needs, and the run slows far more than its share of the cores explains (the same steps beside
two busy loops: 40-65 s spinning, 18 s passive).

So the policy is chosen when pdiff is imported, before torch loads its OpenMP runtime (it reads
the variables only then): the cores that stood idle over the last 0.1 s are counted, and

- on a busy machine (more than 0.75 of a core in use by others) threads wait passively
  (`OMP_WAIT_POLICY=PASSIVE`: they sleep at once);
- on an idle one they spin briefly, then sleep (`GOMP_SPINCOUNT=10000`, a few microseconds,
  instead of libgomp's 300,000): as fast as spinning, and a load that starts later costs less.

A user's own `OMP_WAIT_POLICY` or `GOMP_SPINCOUNT` is left alone. A process that imported torch
first keeps libgomp's long spin, which on a busy machine turns each small operation into a wait
for a time slice (DDIM sampling of 100 models: 0.03 s idle, 12 s beside three other jobs); there,
unless a thread count was asked for, each stage takes as many threads as cores stood idle just
before it ("auto"). Every stage records the policy and the thread count it ran with.

The thread count stays torch's default, one per core: the kernel shares a busy CPU per thread,
so fewer threads get a smaller share, not a faster run (benchmarks/bench_contention.py). A count,
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
SPIN_COUNT = "GOMP_SPINCOUNT"
THREADS_ENV = "PDIFF_THREADS"
IDLE_SPIN = "10000"  # libgomp spin iterations before a waiting thread sleeps, on an idle machine
BUSY_ABOVE = 0.75  # cores in use by others above which the machine counts as busy
SAMPLE_WINDOW = 0.1  # seconds of /proc/stat behind that decision


_policy_in_effect = "unknown"
_policy_chosen = False  # whether pdiff or the user set the policy before torch loaded
_spin_fallback: bool | None = None  # stages without a thread request take "auto" (see apply)


def choose_wait_policy() -> None:
    """Set the OpenMP wait policy from how busy the machine is, unless the user set one or torch
    is already loaded (too late to matter)."""
    global _policy_in_effect, _policy_chosen
    user_set = WAIT_POLICY in os.environ or SPIN_COUNT in os.environ
    if "torch" in sys.modules:
        _policy_in_effect = os.environ.get(WAIT_POLICY, "default") + " (torch was loaded before pdiff)"
        _policy_chosen = user_set
        return
    _policy_chosen = True
    if user_set:
        _policy_in_effect = _describe_user_setting()
        return
    variable, value, _policy_in_effect = decide_policy(free_cores(SAMPLE_WINDOW), os.cpu_count() or 1)
    os.environ[variable] = value


def decide_policy(free: float | None, cores: int) -> tuple[str, str, str]:
    """(variable, value, description) for a machine with `free` idle cores of `cores`."""
    if free is not None and cores - free > BUSY_ABOVE:
        return WAIT_POLICY, "PASSIVE", f"PASSIVE (busy at start: {free:.1f} of {cores} cores idle)"
    return SPIN_COUNT, IDLE_SPIN, f"spin {IDLE_SPIN} (idle at start)"


def _describe_user_setting() -> str:
    parts = [f"{name}={os.environ[name]}" for name in (WAIT_POLICY, SPIN_COUNT) if name in os.environ]
    return ", ".join(parts) + " (set by the user)"


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

    global _spin_fallback
    if _spin_fallback is None:  # decided once, from the first stage's view of torch
        _spin_fallback = not _policy_chosen and torch.get_num_threads() > 1
    if request is None and _spin_fallback:
        request = "auto"  # libgomp's long spin we could not shorten: no more threads than idle cores
    if request == "auto":
        torch.set_num_threads(auto_threads())
    elif isinstance(request, int):
        torch.set_num_threads(request)
    return {"threads": torch.get_num_threads(), "request": request if request is not None else "default",
            "omp_wait_policy": wait_policy()}
