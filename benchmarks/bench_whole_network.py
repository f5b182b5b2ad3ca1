"""Whole-network generation on digits (preset `digits-whole`): zoo vs generated, and the targets.

    python -m benchmarks.bench_whole_network [RUN_DIR] [--set KEY=VALUE ...]

Builds (or resumes) the run with `python -m pdiff run --preset digits-whole` (RUN_DIR defaults to
runs/digits-whole), then prints the accuracy table and checks issue 6's targets: generated median
>= 90% of the zoo median, and at least 50 of 100 generated models within 2 points of the zoo
median. Exits 1 on a miss or a failed run (benchmarks/targets.py). `--set` changes the run (e.g.
fewer training steps for a quick check of the script; the targets then judge that smaller run).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.targets import MISSED, Target, check, exit_code

MEDIAN_RATIO = Target("generated median / zoo median", ">=", 0.9)
NEAR_ZOO = Target("generated models within 2 points of the zoo median", ">=", 50)
NEAR_POINTS = 2.0  # what "within" means for NEAR_ZOO


def build(out: Path, sets: list[str]) -> bool:
    """Build or resume the digits-whole run in `out`; whether it finished."""
    command = [sys.executable, "-m", "pdiff", "run", "--preset", "digits-whole", "--out", str(out), "--quiet"]
    for item in sets:
        command += ["--set", item]
    return subprocess.run(command, cwd=ROOT, check=False).returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path, default=ROOT / "runs" / "digits-whole", help="run directory")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    if not build(args.run, args.sets):
        print("the digits-whole run FAILED")
        return MISSED
    from pdiff.core.rundir import RunDir
    from pdiff.judge.metrics import accuracy_summary
    from pdiff.pipeline.loaders import load_evaluation, load_zoo

    run = RunDir(args.run)
    accuracy = load_evaluation(run).accuracy
    zoo, generated = accuracy["zoo"], accuracy["generated"]
    zoo_median = accuracy_summary(zoo)["median"]
    print(f"\nparameters per model: {load_zoo(run)['params'].shape[1]}; zoo median {zoo_median:.2f}, "
          f"generated median {accuracy_summary(generated)['median']:.2f} ({len(generated)} models)")
    near = int(((generated - zoo_median).abs() <= NEAR_POINTS).sum())
    return exit_code([check(MEDIAN_RATIO, accuracy_summary(generated)["median"] / zoo_median), check(NEAR_ZOO, near)])


if __name__ == "__main__":
    sys.exit(main())
