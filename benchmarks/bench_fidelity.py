"""Does the default generator cover its zoo? The fidelity targets, measured on fresh runs.

Default `digits` preset, seeds 0, 1, 2 (each a fresh run in a temporary folder, in this
process): the scorecard's fidelity numbers (analysis.py), plus DDIM-50 without clipping
re-sampled from each run's generator. And a small task brought through the bring-your-own API
(sklearn make_classification, 600 samples, an MLP with a LayerNorm, target = norm + head),
seeds 0, 1, 2: distinct prediction vectors of 100 generated models against 100 zoo checkpoints.
Prints every run and the medians against the targets:

- spread ratio of the default sampler's latents in [0.85, 1.15]; DDIM-50 without clipping in
  [0.7, 1.3] with no generated model below 90 % accuracy;
- latent recall >= 0.8 x the training latents' own split-half recall; precision >= 0.8;
- generated median accuracy >= zoo median - 0.5; >= 90 % of generated models at most 1 point below
  the zoo median (computed here from the accuracies: the scorecard's `good` now means "in the
  zoo's range", its 5th percentile less a point, a different and looser measure);
- generated within-group IoU <= the zoo's + 0.05;
- bring-your-own: distinct(generated) >= 0.5 x distinct(100 zoo checkpoints).

Exits 1 when a target is missed (benchmarks/targets.py).

    python -m benchmarks.bench_fidelity [--seeds 0 1 2] [--skip-byo] [--threads N] [--set KEY=VALUE ...]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import pdiff

pdiff.configure_threads(chosen_by="benchmarks/bench_fidelity.py")  # before torch loads (pdiff/core/threads.py)

# isort: split
import torch
from torch import nn

from benchmarks.targets import Check, Target, check, exit_code
from pdiff.core.config import parse_set
from pdiff.core.runtime import make_generator
from pdiff.judge import fidelity, metrics
from pdiff.judge.evaluate import BatchedEvaluator
from pdiff.pipeline.loaders import load_evaluation, load_generator, load_task, training_rows
from pdiff.pipeline.report import metrics_table

SPREAD = Target("latent spread ratio, default sampler", "in", (0.85, 1.15))
DDIM_SPREAD = Target("latent spread ratio, DDIM-50 without clipping", "in", (0.7, 1.3))
DDIM_WORST = Target("worst DDIM-50 model over all seeds (accuracy %)", ">=", 90.0)
RECALL = Target("latent recall / self-recall", ">=", 0.8)
PRECISION = Target("latent precision", ">=", 0.8)
ACC_GAP = Target("generated median - zoo median (points)", ">=", -0.5)
NEAR_MEDIAN = Target("generated at most 1 point below the zoo median (%)", ">=", 90.0)
NEAR_POINTS = 1.0  # what "at most ... below" means for NEAR_MEDIAN
IOU_GAP = Target("generated within-group IoU - zoo's", "<=", 0.05)
SECONDS = Target("default run, in this process (s)", "<=", 90.0)
DISTINCT = Target("bring-your-own: distinct generated / distinct zoo", ">=", 0.5)


def ddim_check(run: pdiff.RunDir, config: pdiff.RunConfig, seed: int) -> dict[str, float]:
    """DDIM-50 without clipping, 100 models: latent spread ratio and the worst accuracy."""
    device = torch.device("cpu")
    model = load_generator(run, config, device)
    samples = model.sample(100, make_generator(1000 + seed), "ddim", 50, 0.0, clip=False)
    reference = model.encode(training_rows(run))
    task = load_task(run, config, device)
    accuracy = BatchedEvaluator(task.model, task.layout, task.dataset.x_test, task.dataset.y_test).evaluate(
        samples.params).accuracy
    return {"ddim_spread": fidelity.spread_ratio(samples.latents, reference), "ddim_min": accuracy.min().item()}


def digits_run(root: Path, seed: int, sets: dict, threads: int | None) -> dict[str, float]:
    """One default digits run: its fidelity numbers, accuracy gaps and time, and the DDIM-50 check."""
    config = pdiff.with_overrides(pdiff.preset("digits"), {**sets, "seed": seed})
    started = time.perf_counter()
    run = pdiff.run_pipeline(root / f"digits-s{seed}", config, threads=threads)
    seconds = time.perf_counter() - started
    rows = metrics_table(run).rows
    g, z = rows["generated"], rows["zoo"]
    accuracy = load_evaluation(run).accuracy
    near = metrics.share_at_least(accuracy["generated"], z["median"] - NEAR_POINTS)
    return {"seconds": seconds, "spread": g["latent_spread_ratio"], "precision": g["latent_precision"],
            "recall": g["latent_recall"], "self_recall": g["latent_self_recall"],
            "recall_ratio": g["latent_recall"] / g["latent_self_recall"],
            "acc_gap": g["median"] - z["median"], "near_median": near,
            "iou_gap": g["iou_within"] - z["iou_within"], "distinct_gen": g["distinct_predictions"],
            "distinct_zoo": z["distinct_predictions"], **ddim_check(run, config, seed)}


def register_byo(seed: int) -> None:
    """The bring-your-own task: make_classification data and an MLP with a LayerNorm, registered."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=600, n_features=20, n_informative=8, n_redundant=4, n_classes=3,
                               n_clusters_per_class=2, flip_y=0.05, class_sep=1.0, random_state=seed)
    x = (x - x[:400].mean(0)) / x[:400].std(0)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    pdiff.register_tensors("bench-tabular", x[:400], y[:400], x[400:], y[400:])

    def tabular_mlp(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        return nn.Sequential(OrderedDict(flatten=nn.Flatten(), fc1=nn.Linear(input_shape[-1], 32),
                                         norm=nn.LayerNorm(32), act=nn.ReLU(), head=nn.Linear(32, num_classes)))

    pdiff.register_classifier("bench-tabular-mlp", tabular_mlp)


def byo_run(root: Path, seed: int, sets: dict, threads: int | None) -> dict[str, float]:
    """Distinct prediction vectors of the generated models against random sets of 100 zoo checkpoints."""
    register_byo(seed)
    config = pdiff.with_overrides(pdiff.preset("digits"), {
        **sets, "data.name": "bench-tabular", "classifier.arch": "bench-tabular-mlp", "seed": seed,
        "collect.target": "last-norm:1,head.*", "analysis.umap": False})
    run = pdiff.run_pipeline(root / f"byo-s{seed}", config, threads=threads)
    pred = load_evaluation(run).predictions
    draws = torch.Generator().manual_seed(seed)
    zoo = [metrics.distinct_rows(pred["zoo"][torch.randperm(len(pred["zoo"]), generator=draws)[:100]])
           for _ in range(20)]
    generated = metrics.distinct_rows(pred["generated"][:100])
    return {"distinct_gen": generated, "distinct_zoo": statistics.mean(zoo),
            "distinct_ratio": generated / statistics.mean(zoo)}


def judge_targets(digits: list[dict], byo: list[dict]) -> list[Check]:
    """Every target on the medians over seeds (the worst DDIM model: over all seeds)."""
    def med(rows: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    checks = [check(SPREAD, med(digits, "spread")), check(DDIM_SPREAD, med(digits, "ddim_spread")),
              check(DDIM_WORST, min(r["ddim_min"] for r in digits)), check(RECALL, med(digits, "recall_ratio")),
              check(PRECISION, med(digits, "precision")), check(ACC_GAP, med(digits, "acc_gap")),
              check(NEAR_MEDIAN, med(digits, "near_median")), check(IOU_GAP, med(digits, "iou_gap")),
              check(SECONDS, med(digits, "seconds"))]
    return checks + ([check(DISTINCT, med(byo, "distinct_ratio"))] if byo else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--skip-byo", action="store_true")
    parser.add_argument("--threads", type=int, help="CPU threads per stage (default: torch's, one per core)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    sets = parse_set(args.sets)
    digits, byo = [], []
    with tempfile.TemporaryDirectory(prefix="pdiff-fidelity-") as tmp:
        root = Path(tmp)
        for seed in args.seeds:
            digits.append(digits_run(root, seed, sets, args.threads))
            print(f"digits seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in digits[-1].items()), flush=True)
        if not args.skip_byo:
            for seed in args.seeds:
                byo.append(byo_run(root, seed, sets, args.threads))
                print(f"bring-your-own seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in byo[-1].items()),
                      flush=True)
    print(f"\nmedians over seeds {args.seeds} (default digits preset{' + ' + ' '.join(args.sets) if args.sets else ''})")
    return exit_code(judge_targets(digits, byo))


if __name__ == "__main__":
    sys.exit(main())
