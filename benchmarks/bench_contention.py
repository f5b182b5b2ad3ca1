"""A run on a busy machine: the default run alone vs the same run beside CPU-bound processes.

The benchmark starts the busy processes itself (pure Python loops, one core each) and stops them
after each loaded run, so the two timings are taken side by side. Each setting of thread count
and OpenMP wait policy is measured the same way, so it shows which one keeps a run steady:

    python -m benchmarks.bench_contention [--pairs 3] [--busy 2]
        [--setting "1/passive" --setting "2/active" ...] [--set KEY=VALUE ...]

A setting is "<threads>/<policy>": threads `default` (one per core, torch's own: the CLI's
default) or a positive count (a count taken from the load is not offered: results would depend on
the load); policy `chosen` (what pdiff picks from the load at start: the CLI's default), `passive`,
`active` or `default` (libgomp's own). Prints each pair (alone, loaded, slowdown) and the median
slowdown per setting against the 3x target (on 2 cores beside 2 busy loops a fair share of the
cores gives 2x); exits 1 when a setting misses it (benchmarks/targets.py). Without --setting it
measures the CLI's default (default/chosen) and libgomp's spinning default that it replaced
(default/default).
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
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.targets import Target, check, exit_code

SLOWDOWN = Target("median slowdown, loaded / alone (x)", "<=", 3.0)
BUSY_LOOP = "while True:\n    pass\n"
POLICIES = ("chosen", "passive", "active", "default")


def setting_arg(text: str) -> str:
    """argparse type of --setting: "<default | positive count>/<policy>", refused early, not mid-benchmark."""
    threads, _, policy = text.partition("/")
    if not (threads == "default" or (threads.isdigit() and int(threads) > 0)) or policy not in POLICIES:
        raise argparse.ArgumentTypeError(f"{text!r}: expected <default|N>/<{'|'.join(POLICIES)}>, e.g. 1/passive")
    return text


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
        result = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                check=False)
        if result.returncode != 0:  # exit 1 with the run's own words, not a CalledProcessError
            raise SystemExit(f"pdiff run failed ({setting}, exit {result.returncode}):\n{result.stderr[-2000:]}")
        return time.perf_counter() - started


def busy(count: int) -> list[subprocess.Popen]:
    """`count` CPU-bound processes: the other users of a shared machine."""
    return [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(count)]


def stop(processes: list[subprocess.Popen]) -> None:
    """Kill the busy processes this benchmark started, and reap them."""
    for p in processes:
        p.kill()
    for p in processes:
        p.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--busy", type=int, default=2, help="CPU-bound processes beside the loaded run")
    parser.add_argument("--setting", action="append", type=setting_arg,
                        help="threads/policy, e.g. 1/passive (repeatable)")
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
    return exit_code([check(SLOWDOWN, statistics.median(ratios), label=setting) for setting, ratios in results.items()])


if __name__ == "__main__":
    sys.exit(main())
