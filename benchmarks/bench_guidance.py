"""Guided generation against its targets: the `mnist1d-guided` preset, 3 seeds.

For each seed: the guided preset's run and the default `digits` run, as fresh subprocesses side
by side (time ratio, target <= 2), then requests at five levels spread across the zoo's accuracy
range (its 10th, 25th, 50th, 75th and 90th percentiles; 50 models each, guidance scale 2):
Spearman correlation of requested and achieved median accuracy (target >= 0.9) and the median
|achieved - requested| (<= 2 points); and a request above the zoo's best, to show whether
guidance extrapolates. A request is a validation accuracy (what the denoiser was conditioned on,
pdiff/guide.py), so the levels are percentiles of the training checkpoints' validation accuracy;
what is achieved is measured on the test split, as `guide` reports it. Unconditional sampling
from the conditional model must keep the fidelity targets (latent spread ratio in [0.85, 1.15],
precision >= 0.8, recall >= 0.8 x self-recall): read from the run's own generated group, which is
sampled without a condition. Exits 1 on a miss or a failed run (benchmarks/targets.py).

    python -m benchmarks.bench_guidance [--seeds 0 1 2] [--scale 2] [--models 50]
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

import pdiff

pdiff.configure_threads(chosen_by="benchmarks/bench_guidance.py")  # before torch loads (pdiff/core/threads.py)

# isort: split
import torch
from scipy.stats import spearmanr

from benchmarks.bench_pipeline import run_once
from benchmarks.targets import MISSED, Check, Target, check, exit_code
from pdiff.guide import guide
from pdiff.pipeline.loaders import load_zoo
from pdiff.pipeline.report import metrics_table

RHO = Target("Spearman(requested, achieved median)", ">=", 0.9)
ERROR = Target("median |achieved - requested| (points)", "<=", 2.0)
SPREAD = Target("unconditional latent spread ratio", "in", (0.85, 1.15))
PRECISION = Target("unconditional latent precision", ">=", 0.8)
RECALL = Target("unconditional latent recall / self-recall", ">=", 0.8)
TIME_RATIO = Target("guided run time / default run time", "<=", 2.0)
PERCENTILES = (0.1, 0.25, 0.5, 0.75, 0.9)  # the requested levels, in the zoo's validation accuracy


def request_levels(run: pdiff.RunDir) -> tuple[list[float], float]:
    """The requested levels (percentiles of the training checkpoints' validation accuracy) and one
    request 10 points above their best (capped at 100)."""
    zoo = load_zoo(run)
    val = zoo["val_accuracy"][~zoo["heldout"]].double()
    levels = torch.quantile(val, torch.tensor(PERCENTILES, dtype=torch.float64)).tolist()
    return [round(v, 1) for v in levels], min(100.0, val.max().item() + 10)


def one_seed(root: Path, seed: int, models: int, scale: float) -> dict[str, float] | None:
    """The guided and the default run side by side, then the requests; None when a run failed."""
    guided_path, default_path = root / f"guided-{seed}", root / f"default-{seed}"
    guided_s, _, code, tail = run_once(guided_path, "mnist1d-guided", [f"seed={seed}"], None)
    default_s, _, code2, tail2 = run_once(default_path, "digits", [f"seed={seed}"], None)
    if code or code2:
        print(f"seed {seed}: a run FAILED\n{tail}\n{tail2}")
        return None
    run = pdiff.RunDir(guided_path)
    levels, above_level = request_levels(run)
    records = guide(run, levels + [above_level], models, scale, seed)
    inside, above = records[:-1], records[-1]
    achieved = [r["achieved_median"] for r in inside]
    rho = spearmanr(levels, achieved).statistic
    error = statistics.median(abs(a - r) for a, r in zip(achieved, levels))
    gen = metrics_table(run).rows["generated"]
    pairs = ", ".join(f"{r:.1f}->{a:.1f}" for r, a in zip(levels, achieved))
    print(f"seed {seed}: guided run {guided_s:.1f} s, default run {default_s:.1f} s (ratio {guided_s / default_s:.2f}); "
          f"requested (validation) -> achieved (test) {pairs}; Spearman {rho:.3f}, median |error| {error:.2f}; "
          f"above the zoo's best: asked {above['requested']:.1f}, got {above['achieved_median']:.1f}; unconditional: "
          f"spread {gen['latent_spread_ratio']:.3f}, precision {gen['latent_precision']:.3f}, recall "
          f"{gen['latent_recall']:.3f} (self {gen['latent_self_recall']:.3f})", flush=True)
    return {"time_ratio": guided_s / default_s, "rho": rho, "error": error, "spread": gen["latent_spread_ratio"],
            "precision": gen["latent_precision"], "recall_ratio": gen["latent_recall"] / gen["latent_self_recall"]}


def judge_targets(results: list[dict[str, float]]) -> list[Check]:
    """Every target on the median over seeds."""
    def med(key: str) -> float:
        return statistics.median(r[key] for r in results)

    return [check(RHO, med("rho")), check(ERROR, med("error")), check(SPREAD, med("spread")),
            check(PRECISION, med("precision")), check(RECALL, med("recall_ratio")), check(TIME_RATIO, med("time_ratio"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--scale", type=float, default=2.0)
    parser.add_argument("--models", type=int, default=50)
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="pdiff-guidance-") as tmp:
        for seed in args.seeds:
            result = one_seed(Path(tmp), seed, args.models, args.scale)
            if result is None:
                return MISSED
            results.append(result)
    print(f"\nmedians over seeds {args.seeds} (scale {args.scale:g}, {args.models} models per level)")
    return exit_code(judge_targets(results))


if __name__ == "__main__":
    sys.exit(main())
