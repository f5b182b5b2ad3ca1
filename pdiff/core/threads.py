"""CPU threads: how many a run uses and how they wait, chosen once at the edge and recorded.

Nothing here runs at import. The command line (`python -m pdiff`), the app and notebooks call
`configure_threads()` before torch is imported; library code only reads `current()`.

**How threads wait.** PyTorch's OpenMP threads spin while they wait for each other. On an idle
machine that keeps this project's small training steps fast: a sleeping thread takes longer to
wake than the work between two waits takes (a passive wait doubled the training stages on an
idle machine). On a busy machine one of our threads shares a core with another process, and
every spinning partner then waits for that thread's next time slice at each of thousands of
barriers; a passive partner sleeps instead, and the woken thread preempts the other process at
once (benchmarks/bench_contention.py measures both). One busy core is enough for that, however many cores the machine has, because the
thread count is one per core. So, when `configure_threads` runs before torch loads its OpenMP
runtime (libgomp reads the variables only then), it counts the cores that stood idle over the
last 0.1 s, and

- on a busy machine (more than 0.75 of a core in use by others) threads wait passively
  (`OMP_WAIT_POLICY=PASSIVE`);
- on an idle one they spin briefly, then sleep (`GOMP_SPINCOUNT=10000`, a few microseconds,
  instead of libgomp's 300,000): as fast as spinning, and a load that starts later costs less.

Your own `OMP_WAIT_POLICY` or `GOMP_SPINCOUNT` win. Where torch was imported first it is too late,
and the record says so.

**How many threads.** A count you ask for (`--threads`, `PDIFF_THREADS`, `OMP_NUM_THREADS`, or the
argument), else torch's own default, one per core. Never the load: float reductions depend on
the thread count, so a count taken from the load would make a run's results depend on what else
the machine was doing. The wait policy changes no result.

**Who chose.** Every stage records the count, the policy and who chose them ("the command line",
"the app", "pdiff.configure_threads()", or nobody). A launcher hands its choice to the runs it
starts (`child_environment`), so they record it as the launcher's, not as the user's.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace

WAIT_POLICY = "OMP_WAIT_POLICY"
SPIN_COUNT = "GOMP_SPINCOUNT"
THREADS_ENV = "PDIFF_THREADS"
CHOICE_ENV = "PDIFF_THREAD_CHOICE"  # a launcher's choice, handed to the run it starts (JSON)
IDLE_SPIN = "10000"  # libgomp spin iterations before a waiting thread sleeps, on an idle machine
BUSY_ABOVE = 0.75  # cores in use by others above which the machine counts as busy
SAMPLE_WINDOW = 0.1  # seconds of /proc/stat behind that decision


@dataclass(frozen=True)
class ThreadChoice:
    """What a run's stages use: a thread count (None: torch's default, one per core), the wait
    policy in effect, and who chose them."""

    count: int | None
    policy: str
    chosen_by: str

    def record(self) -> dict[str, object]:
        return asdict(self)


NOT_CHOSEN = ThreadChoice(None, "libgomp's default (nothing chose one)",
                          "nobody (call pdiff.configure_threads() before importing torch to choose)")
_choice: ThreadChoice | None = None
_set_here: dict[str, str] = {}  # variables this process wrote, so a second call does not call them the user's


def configure_threads(count: int | str | None = None, chosen_by: str = "pdiff.configure_threads()") -> ThreadChoice:
    """Choose the thread count and, if torch is not loaded yet, the wait policy; returns the choice.

    `count` is a positive count, or None for `PDIFF_THREADS`, else `OMP_NUM_THREADS`, else torch's
    default. A run started by a launcher adopts the launcher's policy (`child_environment`). Call
    it once, first thing, from an entry point; calling it again keeps the policy and updates the count.
    """
    global _choice
    request = requested_threads(count)
    inherited = _inherited()
    if _choice is not None:
        _choice = replace(_choice, count=request if request is not None else _choice.count)
    elif inherited is not None:
        _choice = replace(inherited, count=request if request is not None else inherited.count)
    else:
        _choice = ThreadChoice(request, _choose_policy(), chosen_by)
    return _choice


def current() -> ThreadChoice:
    """The choice made in this process, or `NOT_CHOSEN`."""
    return _choice if _choice is not None else NOT_CHOSEN


def child_environment(choice: ThreadChoice | None = None) -> dict[str, str]:
    """The environment for a run this process launches: its own, plus the choice to adopt."""
    choice = choice or current()
    return dict(os.environ) | {CHOICE_ENV: json.dumps(choice.record())}


def _inherited() -> ThreadChoice | None:
    """The choice a launcher handed down, if any (ignored when it is not one)."""
    try:
        data = json.loads(os.environ.get(CHOICE_ENV, ""))
        return ThreadChoice(data["count"], str(data["policy"]), str(data["chosen_by"]))
    except (ValueError, KeyError, TypeError):
        return None


def _choose_policy() -> str:
    """Set the wait policy from the load unless the user set one or torch is loaded; describe it."""
    user = [name for name in (WAIT_POLICY, SPIN_COUNT) if name in os.environ and _set_here.get(name) != os.environ[name]]
    if user:
        return ", ".join(f"{name}={os.environ[name]}" for name in user) + " (set by the user)"
    if "torch" in sys.modules:
        return "libgomp's default (torch was imported before the policy could be set)"
    variable, value, description = decide_policy(free_cores(SAMPLE_WINDOW), os.cpu_count() or 1)
    os.environ[variable] = value
    _set_here[variable] = value
    return description


def decide_policy(free: float | None, cores: int) -> tuple[str, str, str]:
    """(variable, value, description) for a machine with `free` idle cores of `cores`."""
    if free is not None and cores - free > BUSY_ABOVE:
        return WAIT_POLICY, "PASSIVE", f"PASSIVE (busy at start: {free:.1f} of {cores} cores idle)"
    return SPIN_COUNT, IDLE_SPIN, f"spin {IDLE_SPIN} (idle at start)"


def requested_threads(value: int | str | None = None) -> int | None:
    """What was asked for: a count, or None (torch's default).

    Order: `value` (the CLI flag or argument), `PDIFF_THREADS`, then `OMP_NUM_THREADS`.
    """
    for raw in (value, os.environ.get(THREADS_ENV), os.environ.get("OMP_NUM_THREADS")):
        if raw is None or str(raw).strip() == "":
            continue
        text = str(raw).strip()
        if text.isdigit() and int(text) > 0:
            return int(text)
        raise ValueError(f"threads must be a positive count, got {raw!r} (a count taken from the load would make "
                         f"results depend on it)")
    return None


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
