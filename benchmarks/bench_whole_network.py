"""Whole-network generation on digits (preset `digits-whole`): zoo vs generated, and the targets.

    python benchmarks/bench_whole_network.py [RUN_DIR]

Builds (or resumes) the run with `python -m pdiff run --preset digits-whole`, then prints the
accuracy table and checks issue 6's targets: generated median >= 90% of the zoo median, and at
least 50 of 100 generated models within 2 points of the zoo median.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "runs" / "digits-whole"
    subprocess.run([sys.executable, "-m", "pdiff", "run", "--preset", "digits-whole", "--out", str(out), "--quiet"],
                   cwd=ROOT, check=True)
    sys.path.insert(0, str(ROOT))
    from pdiff.core.rundir import RunDir
    from pdiff.judge.metrics import accuracy_summary
    from pdiff.pipeline.loaders import load_evaluation

    accuracy = load_evaluation(RunDir(out)).accuracy
    zoo, generated = accuracy["zoo"], accuracy["generated"]
    zoo_median = accuracy_summary(zoo)["median"]
    near = int(((generated - zoo_median).abs() <= 2.0).sum())
    ratio = accuracy_summary(generated)["median"] / zoo_median
    print(f"\nparameters per model: {RunDir(out).load('zoo.safetensors')[0]['params'].shape[1]}")
    print(f"generated median / zoo median = {ratio:.3f} (target >= 0.90): {'ok' if ratio >= 0.9 else 'MISSED'}")
    print(f"generated within 2 points of the zoo median: {near} of {len(generated)} (target >= 50): "
          f"{'ok' if near >= 50 else 'MISSED'}")


if __name__ == "__main__":
    main()
