"""Guided generation against its targets: the `mnist1d-guided` preset, 3 seeds.

For each seed: the guided preset's run and the default `digits` run, as fresh subprocesses side
by side (time ratio, target <= 2), then requests at five levels spread across the zoo's accuracy
range (its 10th, 25th, 50th, 75th and 90th percentiles; 50 models each, guidance scale 2):
Spearman correlation of requested and achieved median accuracy (target >= 0.9) and the median
|achieved - requested| (<= 2 points); and a request above the zoo's best, to show whether
guidance extrapolates. Unconditional sampling from the conditional model must keep the fidelity
targets (latent spread ratio in [0.85, 1.15], precision >= 0.8, recall >= 0.8 x self-recall):
read from the run's own generated group, which is sampled without a condition.

    python -m benchmarks.bench_guidance [--seeds 0 1 2] [--scale 2] [--models 50]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from scipy.stats import spearmanr

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import pdiff  # noqa: F401  (before torch: it chooses the OpenMP wait policy torch starts with)

# isort: split
import torch

from benchmarks.bench_pipeline import run_once


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--scale", type=float, default=2.0)
    parser.add_argument("--models", type=int, default=50)
    args = parser.parse_args(argv)

    from pdiff.core.rundir import RunDir
    from pdiff.guide import guide
    from pdiff.pipeline.loaders import load_evaluation
    from pdiff.pipeline.report import metrics_table

    results = []
    with tempfile.TemporaryDirectory(prefix="pdiff-guidance-") as tmp:
        for seed in args.seeds:
            guided_path, default_path = Path(tmp) / f"guided-{seed}", Path(tmp) / f"default-{seed}"
            guided_s, _, code, tail = run_once(guided_path, "mnist1d-guided", [f"seed={seed}"], None)
            default_s, _, code2, tail2 = run_once(default_path, "digits", [f"seed={seed}"], None)
            if code or code2:
                print(f"seed {seed}: a run FAILED\n{tail}\n{tail2}")
                return 1
            run = RunDir(guided_path)
            zoo = load_evaluation(run).accuracy["zoo"].double()
            levels = [round(v, 1) for v in torch.quantile(zoo, torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9],
                                                                          dtype=torch.float64)).tolist()]
            records = guide(run, levels + [min(100.0, zoo.max().item() + 10)], args.models, args.scale, seed)
            inside, above = records[:-1], records[-1]
            achieved = [r["achieved_median"] for r in inside]
            rho = spearmanr(levels, achieved).statistic
            error = statistics.median(abs(a - r) for a, r in zip(achieved, levels))
            gen = metrics_table(run).rows["generated"]
            results.append({"time_ratio": guided_s / default_s, "rho": rho, "error": error,
                            "spread": gen["latent_spread_ratio"], "precision": gen["latent_precision"],
                            "recall_ratio": gen["latent_recall"] / gen["latent_self_recall"]})
            pairs = ", ".join(f"{r:.1f}->{a:.1f}" for r, a in zip(levels, achieved))
            print(f"seed {seed}: guided run {guided_s:.1f} s, default run {default_s:.1f} s "
                  f"(ratio {guided_s / default_s:.2f}); zoo {zoo.min():.1f}-{zoo.max():.1f} %; requested->achieved "
                  f"{pairs}; Spearman {rho:.3f}, median |error| {error:.2f}; above the zoo's best: asked "
                  f"{above['requested']:.1f}, got {above['achieved_median']:.1f}; unconditional: spread "
                  f"{gen['latent_spread_ratio']:.3f}, precision {gen['latent_precision']:.3f}, recall "
                  f"{gen['latent_recall']:.3f} (self {gen['latent_self_recall']:.3f})", flush=True)

    def med(key: str) -> float:
        return statistics.median(r[key] for r in results)

    checks = [
        ("Spearman(requested, achieved median)", med("rho"), med("rho") >= 0.9, ">= 0.9"),
        ("median |achieved - requested| (points)", med("error"), med("error") <= 2, "<= 2"),
        ("unconditional latent spread ratio", med("spread"), 0.85 <= med("spread") <= 1.15, "[0.85, 1.15]"),
        ("unconditional latent precision", med("precision"), med("precision") >= 0.8, ">= 0.8"),
        ("unconditional latent recall / self-recall", med("recall_ratio"), med("recall_ratio") >= 0.8, ">= 0.8"),
        ("guided run time / default run time", med("time_ratio"), med("time_ratio") <= 2, "<= 2"),
    ]
    print(f"\nmedians over seeds {args.seeds} (scale {args.scale:g}, {args.models} models per level)")
    for name, value, ok, target in checks:
        print(f"  {name:44s} {value:8.3f}   target {target:14s} {'OK' if ok else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
