"""Time `python -m pdiff run` on a preset, from nothing to a finished run, and check its quality.

Each of N runs (default 3) starts in a fresh temporary directory as its own subprocess, so it
pays everything a user pays: interpreter start, imports, the numba JIT of UMAP. Prints per run
the wall time, the peak RSS of that process (os.wait4's rusage), the seconds of each stage from
the manifest and the zoo/generated accuracies; then the medians against the targets (35 s, with
the ratio to the 66.7 s measured before the speed work; 2 GB) and the quality check in every run:
generated best >= zoo best - 0.5 and generated median >= zoo median - 1.0 (accuracy points).
Exits 1 when a target is missed or a run fails (benchmarks/targets.py).

Run from the repository root:
    python -m benchmarks.bench_pipeline [--runs 3] [--preset digits] [--threads N] [--keep DIR]
        [--set KEY=VALUE ...]
`--keep DIR` leaves the last run in DIR (to reuse with bench_sampling / bench_analysis).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.targets import Check, Target, check, exit_code

BEFORE_S = 66.7  # the default run's median before the speed work (stop 9, this machine)
WALL = Target("median wall time (s)", "<=", 35.0)
RSS = Target("median peak RSS (MB)", "<=", 2048.0)
# accuracy points the generated models may trail the zoo by, in every run (so: in the worst run)
BEST = Target("generated best - zoo best, worst run (points)", ">=", -0.5)
MEDIAN = Target("generated median - zoo median, worst run (points)", ">=", -1.0)


def run_once(out: Path, preset: str, sets: list[str], threads: int | None,
             repo: Path = REPO) -> tuple[float, float, int, str]:
    """(wall seconds, peak RSS in MB, exit code, stderr tail) of one `python -m pdiff run` of the
    code in `repo` (this checkout, or another one to compare against)."""
    cmd = [sys.executable, "-m", "pdiff", "run", "--preset", preset, "--out", str(out), "--quiet"]
    for item in sets:
        cmd += ["--set", item]
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # rusage of this child alone
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors="replace")[-2000:]
    return wall, usage.ru_maxrss / 1024, proc.returncode, tail  # ru_maxrss is in KiB on Linux


def run_summary(out: Path) -> dict:
    from pdiff.core.rundir import RunDir
    from pdiff.pipeline.report import metrics_table
    from pdiff.pipeline.table import STAGE_NAMES

    run = RunDir(out)
    card = metrics_table(run).rows
    records = run.manifest()["stages"]
    stages = {name: records[name].get("seconds", float("nan")) for name in STAGE_NAMES}
    return {"zoo": card["zoo"], "generated": card["generated"], "stages": stages}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--preset", default="digits")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for the runs (default: torch's choice)")
    parser.add_argument("--keep", type=Path, help="copy the last finished run here")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)

    import torch

    print(f"python -m pdiff run --preset {args.preset} {' '.join('--set ' + s for s in args.sets)}".rstrip())
    print(f"{args.runs} runs, torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"threads={args.threads or 'default'}, load average {os.getloadavg()[0]:.1f}")
    walls, rss, summaries = [], [], []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="pdiff-bench-") as tmp:
            out = Path(tmp) / "run"
            wall, peak, code, tail = run_once(out, args.preset, args.sets, args.threads)
            if code != 0:
                print(f"run {i + 1}: FAILED with exit code {code}\n{tail}")
                return 1
            summary = run_summary(out)
            if args.keep and i == args.runs - 1:
                shutil.rmtree(args.keep, ignore_errors=True)
                shutil.copytree(out, args.keep)
        walls.append(wall)
        rss.append(peak)
        summaries.append(summary)
        stages = "  ".join(f"{k} {v:.1f}" for k, v in summary["stages"].items())
        z, g = summary["zoo"], summary["generated"]
        print(f"run {i + 1}: {wall:6.1f} s wall, peak RSS {peak:6.0f} MB | zoo best {z['best']:.2f} median "
              f"{z['median']:.2f} | generated best {g['best']:.2f} median {g['median']:.2f} | stages (s): {stages}")

    print("median stage seconds: " + "  ".join(
        f"{s} {statistics.median(x['stages'][s] for x in summaries):.1f}" for s in summaries[0]["stages"]))
    quality_table(summaries)
    return exit_code(judge_targets(walls, rss, summaries))


def quality_table(summaries: list[dict]) -> None:
    """Per run: zoo and generated best and median accuracy, and whether each run keeps up."""
    print("\nquality (accuracy %, per run)")
    print(f"{'run':>4} {'zoo best':>9} {'gen best':>9} {'best ok':>8} {'zoo med':>8} {'gen med':>8} {'median ok':>10}")
    for i, s in enumerate(summaries):
        z, g = s["zoo"], s["generated"]
        best_ok, median_ok = BEST.met(g["best"] - z["best"]), MEDIAN.met(g["median"] - z["median"])
        print(f"{i + 1:>4} {z['best']:9.2f} {g['best']:9.2f} {'yes' if best_ok else 'NO':>8} {z['median']:8.2f} "
              f"{g['median']:8.2f} {'yes' if median_ok else 'NO':>10}")


def judge_targets(walls: list[float], rss: list[float], summaries: list[dict]) -> list[Check]:
    """The targets on the medians of time and memory and on the worst run's quality."""
    wall = statistics.median(walls)
    print(f"\nmedian wall time {wall:.1f} s: {BEFORE_S / wall:.2f}x faster than the {BEFORE_S} s before")
    return [check(WALL, wall), check(RSS, statistics.median(rss)),
            check(BEST, min(s["generated"]["best"] - s["zoo"]["best"] for s in summaries)),
            check(MEDIAN, min(s["generated"]["median"] - s["zoo"]["median"] for s in summaries))]

if __name__ == "__main__":
    sys.exit(main())
