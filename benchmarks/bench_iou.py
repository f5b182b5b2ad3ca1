"""Time wrong-set IoU and prediction agreement for 1,000 models x 10,000 test samples.

Prints the median of 5 runs and judges wrong_sets_iou on both kinds of predictions against the
2 s target (exit 1 on a miss, benchmarks/targets.py), and the speed-up over a naive double loop
over model pairs (timed on a small subset and scaled per pair).

Run from the repository root: python -m benchmarks.bench_iou [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import pdiff

pdiff.configure_threads(chosen_by="benchmarks/bench_iou.py")  # before torch loads (pdiff/core/threads.py)

# isort: split
import torch

from benchmarks.targets import Check, Target, check, exit_code
from pdiff.judge.metrics import prediction_agreement, wrong_sets_iou

IOU = Target("wrong_sets_iou, 1000 x 10000 (s)", "<=", 2.0)
KINDS = ("iid", "zoo")


def median_time(fn, repeats: int = 5) -> float:
    """Median seconds of `repeats` calls: one slow call on a shared machine does not decide."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def naive_iou(pred: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The obvious reference: one pair at a time."""
    wrong = pred != labels
    out = torch.empty(len(pred), len(pred))
    for i in range(len(pred)):
        for j in range(len(pred)):
            inter = (wrong[i] & wrong[j]).sum().item()
            union = (wrong[i] | wrong[j]).sum().item()
            out[i, j] = inter / union if union else 1.0
    return out


def predictions(kind: str, n_models: int, n_samples: int, n_classes: int,
                g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, S) predictions and (S,) labels.

    "iid": every model wrong on a random 10% of samples with a random wrong class, so no sample
    is unanimous (the worst case for the metrics' shortcut). "zoo": like checkpoints of one
    training run, 3% hard samples most models get wrong the same way, 1% scattered errors.
    """
    labels = torch.randint(n_classes, (n_samples,), generator=g)
    offset = torch.randint(1, n_classes, (n_models, n_samples), generator=g)
    if kind == "iid":
        wrong = torch.rand(n_models, n_samples, generator=g) < 0.10
    else:
        hard = torch.rand(n_samples, generator=g) < 0.03
        wrong = torch.rand(n_models, n_samples, generator=g) < torch.where(hard, 0.8, 0.01)
        offset = torch.where(hard, 1, offset)
    return torch.where(wrong, (labels + offset) % n_classes, labels.expand(n_models, -1)), labels


def time_kinds(n_models: int, n_samples: int, n_classes: int, repeats: int, g: torch.Generator) -> list[Check]:
    """Both metrics on each kind of predictions; the IoU target judged on each."""
    checks = []
    for kind in KINDS:
        pred, labels = predictions(kind, n_models, n_samples, n_classes, g)
        t_iou = median_time(lambda pred=pred, labels=labels: wrong_sets_iou(pred, labels), repeats)
        t_agree = median_time(lambda pred=pred: prediction_agreement(pred), repeats)
        print(f"[{kind}] prediction_agreement: {t_agree:.3f} s (median of {repeats})")
        checks.append(check(IOU, t_iou, label=kind))
    return checks


def naive_speedup(n_models: int, n_samples: int, n_classes: int, n_naive: int, repeats: int,
                  g: torch.Generator) -> None:
    """The fast IoU against the pairwise loop (checked equal on 10 models), scaled per pair."""
    pred, labels = predictions("iid", n_models, n_samples, n_classes, g)
    t_iou = median_time(lambda: wrong_sets_iou(pred, labels), repeats)
    sub = pred[:n_naive]
    t_naive = median_time(lambda: naive_iou(sub, labels), repeats=1)
    torch.testing.assert_close(naive_iou(sub[:10], labels), wrong_sets_iou(sub[:10], labels))
    per_pair_naive = t_naive / n_naive**2
    per_pair_fast = t_iou / n_models**2
    print(f"[iid] naive double loop:    {t_naive:.3f} s for {n_naive}x{n_naive} pairs "
          f"-> {per_pair_naive * n_models**2:.0f} s estimated for {n_models}x{n_models}; "
          f"speed-up {per_pair_naive / per_pair_fast:.0f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timings per measurement (the median is kept)")
    args = parser.parse_args(argv)
    n_models, n_samples, n_classes, n_naive = 1000, 10_000, 10, 60  # the sizes the target is stated for
    g = torch.Generator().manual_seed(0)
    print(f"{n_models} models x {n_samples} samples x {n_classes} classes, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    checks = time_kinds(n_models, n_samples, n_classes, args.repeats, g)
    naive_speedup(n_models, n_samples, n_classes, n_naive, args.repeats, g)
    return exit_code(checks)


if __name__ == "__main__":
    sys.exit(main())
