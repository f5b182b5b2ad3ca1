"""A run on a busy machine: the default run alone vs the same run beside CPU-bound processes.

The benchmark starts the busy processes itself (pure Python loops, one core each) and stops them
after each loaded run, so the two timings are taken side by side. Each setting of thread count
and OpenMP wait policy is measured the same way, so it shows which one keeps a run steady:

    python -m benchmarks.bench_contention [--pairs 3] [--busy 2]
        [--setting "auto/passive" --setting "2/active" ...] [--set KEY=VALUE ...]

A setting is "<threads>/<policy>": threads `default` (torch's own, one per core: the CLI's
default), `auto` (the cores free before each stage), or a count; policy `chosen` (what pdiff picks
from the load at start: the CLI's default), `passive`, `active` or `default` (libgomp's own). Prints each pair (alone, loaded, slowdown) and the median slowdown per setting
against the 3x target (on 2 cores beside 2 busy loops a fair share of the cores gives 2x). Without
--setting it measures the CLI's default (default/chosen) and libgomp's spinning default that it
replaced (default/default).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_SLOWDOWN = 3.0
BUSY_LOOP = "while True:\n    pass\n"


def run_once(setting: str, sets: list[str]) -> float:
    """Wall seconds of one `python -m pdiff run` (default preset) under `setting`."""
    threads, policy = setting.split("/")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "PDIFF_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if policy == "default":
        env["OMP_WAIT_POLICY"] = ""  # empty: pdiff leaves it, libgomp uses its default (spinning)
    elif policy != "chosen":  # chosen: nothing set, pdiff picks from the load at start (threads.py)
        env["OMP_WAIT_POLICY"] = policy.upper()
    with tempfile.TemporaryDirectory(prefix="pdiff-contention-") as tmp:
        cmd = [sys.executable, "-m", "pdiff", "run", "--out", str(Path(tmp) / "run"), "--quiet"]
        cmd += ["--threads", threads] if threads != "default" else ["--threads", str(os.cpu_count() or 1)]
        for item in sets:
            cmd += ["--set", item]
        env["PDIFF_STORE"] = "off"
        started = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
        return time.perf_counter() - started


def busy(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(count)]


def stop(processes: list[subprocess.Popen]) -> None:
    for p in processes:
        p.kill()
    for p in processes:
        p.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--busy", type=int, default=2, help="CPU-bound processes beside the loaded run")
    parser.add_argument("--setting", action="append", help="threads/policy, e.g. auto/passive (repeatable)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    settings = args.setting or ["default/chosen", "default/default"]  # the CLI's default, and before it
    print(f"default run alone vs beside {args.busy} busy processes; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; {args.pairs} pairs per setting")
    results: dict[str, list[float]] = {}
    for setting in settings:
        for i in range(args.pairs):
            alone = run_once(setting, args.sets)
            loops = busy(args.busy)
            try:
                time.sleep(1.0)  # let the loops take their cores
                loaded = run_once(setting, args.sets)
            finally:
                stop(loops)
            results.setdefault(setting, []).append(loaded / alone)
            print(f"{setting:>16} pair {i + 1}: alone {alone:6.1f} s, loaded {loaded:6.1f} s, "
                  f"slowdown {loaded / alone:.2f}x", flush=True)
    print()
    for setting, ratios in results.items():
        median = statistics.median(ratios)
        print(f"{setting:>16}: median slowdown {median:.2f}x ({median / TARGET_SLOWDOWN:.2f} of the "
              f"{TARGET_SLOWDOWN:.0f}x target: {'OK' if median <= TARGET_SLOWDOWN else 'OVER'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
