"""Time the analysis stage (UMAP included) on a finished run, then the IoU of 1000 x 10000.

Analysis: each repetition is `python -m pdiff analyse RUN` in a fresh process, as a user runs
it, so UMAP's numba JIT is paid every time (that is the cost a fresh `pdiff run` pays too).
Prints the stage's own seconds from the manifest (imports of torch excluded, UMAP import and
JIT included) and the process wall time, median of 3, with the ratio to the 10 s target. The
run is copied first, so the original is left as it was; UMAP is switched on in the copy if the
run was made without it.

IoU: runs benchmarks/bench_iou.py in its own process (1000 models x 10000 samples; target 2 s).
Exits 1 when the analysis or the IoU target is missed (benchmarks/targets.py).

Run from the repository root:
    python -m benchmarks.bench_analysis [RUN_DIR] [--repeats 3] [--threads N] [--skip-iou]
Without RUN_DIR, the default preset is run here up to its evaluation stage first.
"""
from __future__ import annotations

import argparse
import json
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

from benchmarks.targets import Target, check, exit_code

STAGE = Target("median analyse stage seconds, UMAP on (s)", "<=", 10.0)


def child_env(threads: int | None) -> dict[str, str]:
    """The environment of the processes started here: OMP_NUM_THREADS when a count was asked for."""
    return dict(os.environ) | ({"OMP_NUM_THREADS": str(threads)} if threads else {})


def analyse_once(run: Path, threads: int | None) -> tuple[float, float]:
    """(stage seconds from the manifest, process wall seconds) of one `python -m pdiff analyse`."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pdiff", "analyse", str(run)], cwd=REPO, env=child_env(threads),
                            capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"pdiff analyse failed:\n{result.stderr[-2000:]}")
    seconds = json.loads((run / "run.json").read_text())["stages"]["analyse"]["seconds"]
    return seconds, wall


def enable_umap(run: Path) -> bool:
    """Switch analysis.umap on in a copied run's manifest (the analysis stage reads it from there)."""
    manifest = json.loads((run / "run.json").read_text())
    if manifest["config"]["analysis"]["umap"]:
        return False
    manifest["config"]["analysis"]["umap"] = True
    (run / "run.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return True


def prepare(source: Path | None, run: Path, threads: int | None) -> None:
    """Copy `source` to `run`, or make a default run up to its evaluation there."""
    if source is None:
        print("running the default preset up to its evaluation stage ...", flush=True)
        subprocess.run([sys.executable, "-m", "pdiff", "run", "--out", str(run), "--until", "evaluate", "--quiet"],
                       cwd=REPO, env=child_env(threads), check=True, stdout=subprocess.DEVNULL)
    else:
        shutil.copytree(source, run)


def time_analysis(source: Path | None, repeats: int, threads: int | None) -> float:
    """Median seconds of the analyse stage over `repeats` fresh processes on a copy of `source`."""
    with tempfile.TemporaryDirectory(prefix="pdiff-bench-") as tmp:
        run = Path(tmp) / "run"
        prepare(source, run, threads)
        switched = enable_umap(run)
        manifest = json.loads((run / "run.json").read_text())
        sizes = manifest["stages"].get("evaluate", {}).get("metrics", {})
        print(f"analysis of {source or 'a fresh default run'} (UMAP on{', switched on in the copy' if switched else ''}; "
              f"{manifest['config']['sample']['num_models']} generated, {manifest['config']['collect']['num_checkpoints']} "
              f"checkpoints), threads={threads or 'default'}; zoo median {sizes.get('zoo_median', float('nan')):.2f}")
        stage_s, wall_s = [], []
        for i in range(repeats):
            seconds, wall = analyse_once(run, threads)
            stage_s.append(seconds)
            wall_s.append(wall)
            print(f"analyse {i + 1}: stage {seconds:.2f} s, process wall {wall:.2f} s")
    print(f"median process wall {statistics.median(wall_s):.2f} s")
    return statistics.median(stage_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path, help="a run whose evaluate stage is done (default: make one)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for the analyse processes")
    parser.add_argument("--skip-iou", action="store_true")
    args = parser.parse_args(argv)
    code = exit_code([check(STAGE, time_analysis(args.run, args.repeats, args.threads))])
    if args.skip_iou:
        return code
    print("\nIoU (benchmarks/bench_iou.py):", flush=True)
    iou = subprocess.run([sys.executable, "-m", "benchmarks.bench_iou"], cwd=REPO, env=child_env(args.threads),
                         check=False)
    return max(code, iou.returncode)


if __name__ == "__main__":
    sys.exit(main())
