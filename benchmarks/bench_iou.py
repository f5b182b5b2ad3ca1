"""Time wrong-set IoU and prediction agreement for 1,000 models x 10,000 test samples.

Prints the median of 5 runs, its ratio to the 2 s target, and the speed-up over a naive
double loop over model pairs (timed on a small subset and scaled per pair).
Run from the repository root: python -m benchmarks.bench_iou
"""
from __future__ import annotations

import statistics
import time

import pdiff  # noqa: F401  (before torch: it chooses the OpenMP wait policy torch starts with)

# isort: split
import torch

from pdiff.judge.metrics import prediction_agreement, wrong_sets_iou

TARGET_S = 2.0


def median_time(fn, repeats: int = 5) -> float:
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


def main(n_models: int = 1000, n_samples: int = 10_000, n_classes: int = 10, n_naive: int = 60) -> None:
    g = torch.Generator().manual_seed(0)
    print(f"{n_models} models x {n_samples} samples x {n_classes} classes, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for kind in ("iid", "zoo"):
        pred, labels = predictions(kind, n_models, n_samples, n_classes, g)
        t_iou = median_time(lambda pred=pred, labels=labels: wrong_sets_iou(pred, labels))
        t_agree = median_time(lambda pred=pred: prediction_agreement(pred))
        print(f"[{kind}] wrong_sets_iou:       {t_iou:.3f} s (median of 5), "
              f"{t_iou / TARGET_S:.2f}x of the {TARGET_S:.0f} s target")
        print(f"[{kind}] prediction_agreement: {t_agree:.3f} s (median of 5)")

    pred, labels = predictions("iid", n_models, n_samples, n_classes, g)
    t_iou = median_time(lambda: wrong_sets_iou(pred, labels))

    sub = pred[:n_naive]
    t_naive = median_time(lambda: naive_iou(sub, labels), repeats=1)
    torch.testing.assert_close(naive_iou(sub[:10], labels), wrong_sets_iou(sub[:10], labels))
    per_pair_naive = t_naive / n_naive**2
    per_pair_fast = t_iou / n_models**2
    print(f"[iid] naive double loop:    {t_naive:.3f} s for {n_naive}x{n_naive} pairs "
          f"-> {per_pair_naive * n_models**2:.0f} s estimated for {n_models}x{n_models}; "
          f"speed-up {per_pair_naive / per_pair_fast:.0f}x")


if __name__ == "__main__":
    main()
