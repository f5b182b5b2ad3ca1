"""The `mnist1d` preset against its targets: time, memory, and headroom for similarity metrics.

Runs `python -m pdiff run --preset mnist1d` N times (default 3, seeds 0..N-1) as fresh
subprocesses and prints per run and as medians: wall time (target <= 90 s), peak RSS (<= 2 GB),
the zoo's median accuracy (in [80, 95] %), the generated median against the zoo's (>= zoo - 1
point), and the zoo's median max IoU to the other zoo models (< 0.95, so the metric can resolve
differences between models). The generated numbers come from the run's metrics table. Exits 1
on a miss or a failed run (benchmarks/targets.py).

    python -m benchmarks.bench_mnist1d [--runs 3] [--set KEY=VALUE ...]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.bench_pipeline import run_once
from benchmarks.targets import Check, Target, check, exit_code

WALL = Target("wall time (s)", "<=", 90.0)
RSS = Target("peak RSS (MB)", "<=", 2048.0)
ZOO_MEDIAN = Target("zoo median accuracy (%)", "in", (80.0, 95.0))
GAP = Target("generated median - zoo median (points)", ">=", -1.0)
ZOO_IOU = Target("zoo median max IoU to the other zoo models", "<", 0.95)


def judge_targets(rows: list[dict[str, float]]) -> list[Check]:
    """Every target on the median over runs."""
    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    return [check(WALL, med("wall")), check(RSS, med("rss")), check(ZOO_MEDIAN, med("zoo")),
            check(GAP, statistics.median(r["gen"] - r["zoo"] for r in rows)), check(ZOO_IOU, med("zoo_iou"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)

    from pdiff.core.rundir import RunDir
    from pdiff.pipeline.report import metrics_table

    rows = []
    for seed in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="pdiff-mnist1d-") as tmp:
            out = Path(tmp) / "run"
            wall, rss, code, tail = run_once(out, "mnist1d", [*args.sets, f"seed={seed}"], None)
            if code != 0:
                print(f"seed {seed}: FAILED ({code})\n{tail}")
                return 1
            card = metrics_table(RunDir(out)).rows
        zoo, gen = card["zoo"], card["generated"]
        rows.append({"wall": wall, "rss": rss, "zoo": zoo["median"], "gen": gen["median"],
                     "zoo_iou": zoo["max_iou_median"], "gen_iou": gen["max_iou_median"]})
        r = rows[-1]
        print(f"seed {seed}: {wall:5.1f} s, peak RSS {rss:5.0f} MB | zoo median {r['zoo']:.2f}, generated median "
              f"{r['gen']:.2f} | zoo median max IoU {r['zoo_iou']:.3f}, generated {r['gen_iou']:.3f}", flush=True)

    print(f"\nmedians over {args.runs} runs")
    return exit_code(judge_targets(rows))


if __name__ == "__main__":
    sys.exit(main())
