"""The `mnist1d` preset against its targets: time, memory, and headroom for similarity metrics.

Runs `python -m pdiff run --preset mnist1d` N times (default 3, seeds 0..N-1) as fresh
subprocesses and prints per run and as medians: wall time (target <= 90 s), peak RSS (<= 2 GB),
the zoo's median accuracy (in [80, 95] %), the generated median against the zoo's (>= zoo - 1
point), and the zoo's median max IoU to the other zoo models (< 0.95, so the metric can resolve
differences between models). The generated numbers come from the run's metrics table.

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

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    checks = [
        ("wall time (s)", med("wall"), med("wall") <= 90, "<= 90"),
        ("peak RSS (MB)", med("rss"), med("rss") <= 2048, "<= 2048"),
        ("zoo median accuracy (%)", med("zoo"), 80 <= med("zoo") <= 95, "in [80, 95]"),
        ("generated median - zoo median (points)", statistics.median(r["gen"] - r["zoo"] for r in rows),
         statistics.median(r["gen"] - r["zoo"] for r in rows) >= -1, ">= -1"),
        ("zoo median max IoU to the other zoo models", med("zoo_iou"), med("zoo_iou") < 0.95, "< 0.95"),
    ]
    print(f"\nmedians over {args.runs} runs")
    for name, value, ok, target in checks:
        print(f"  {name:44s} {value:9.3f}   target {target:12s} {'OK' if ok else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
