"""B - A between two runs' scorecards: the MOVER interval of a difference, row by row."""
from __future__ import annotations

import math

import pytest
import torch

from pdiff.judge import metrics
from pdiff.judge.comparison import compare_rows, mover


def test_mover_reduces_to_the_normal_interval_for_symmetric_intervals():
    lo, hi = mover(10.0, (9.0, 11.0), 13.0, (11.0, 15.0))
    half = math.hypot(1.0, 2.0)  # sqrt(1^2 + 2^2): the half-widths add in quadrature
    assert (lo, hi) == pytest.approx((3.0 - half, 3.0 + half))


def test_mover_keeps_asymmetry():
    lo, hi = mover(0.9, (0.85, 0.9), 0.8, (0.7, 0.82))
    assert lo == pytest.approx(-0.1 - math.hypot(0.1, 0.0)) and hi == pytest.approx(-0.1 + math.hypot(0.02, 0.05))


def test_mover_covers_the_true_difference_about_95_percent_of_the_time():
    """Bootstrap intervals of two independent samples' means, combined by MOVER."""
    gen = torch.Generator().manual_seed(0)
    hits, trials = 0, 200
    for _ in range(trials):
        a, b = torch.randn(60, generator=gen), torch.randn(60, generator=gen) + 0.5
        ci_a = metrics.bootstrap_ci(a, 400, generator=gen)
        ci_b = metrics.bootstrap_ci(b, 400, generator=gen)
        lo, hi = mover(a.mean().item(), ci_a, b.mean().item(), ci_b)
        hits += lo <= 0.5 <= hi
    assert 0.88 <= hits / trials <= 0.99


def test_compare_rows_every_headline_number_either_run_has():
    a = {"median": 98.0, "median_ci": [97.8, 98.2], "max_iou_median": 0.9, "max_iou_median_ci": [0.88, 0.92],
         "distinct_predictions": 31, "good": 99.0, "good_ci": [97.0, 100.0]}
    b = {"median": 98.3, "median_ci": [98.1, 98.5], "max_iou_median": 0.8, "max_iou_median_ci": [0.78, 0.81],
         "distinct_predictions": 60, "good": 100.0, "good_ci": [100.0, 100.0], "latent_spread_ratio": 0.4}
    rows = {d.key: d for d in compare_rows(a, b)}
    assert list(rows) == ["median", "good", "max_iou_median", "distinct_predictions", "latent_spread_ratio"]
    assert rows["median"].diff == pytest.approx(0.3)
    assert rows["median"].ci == pytest.approx(mover(98.0, (97.8, 98.2), 98.3, (98.1, 98.5)))
    assert rows["max_iou_median"].diff == pytest.approx(-0.1) and rows["max_iou_median"].ci[1] < 0
    assert rows["distinct_predictions"].diff == 29 and rows["distinct_predictions"].ci is None
    assert rows["latent_spread_ratio"].a is None and rows["latent_spread_ratio"].diff is None  # only B measured fidelity


def test_runs_that_measure_different_things_are_named_as_such():
    """mnist1d against digits once came out as "+10.87 [10.53, 11.35]", a real change; max IoU to 200
    checkpoints against max IoU to 20 without a word."""
    from pdiff.judge.comparison import mismatches, run_facts

    rows = {"zoo": {"n": 200, "test_samples": 540}}
    digits = run_facts("digits", "cnn", "last-norm:1,head.*", rows)
    assert mismatches(digits, run_facts("digits", "cnn", "last-norm:1,head.*", rows)) == []
    other = run_facts("mnist1d", "cnn", "last-norm:1,head.*", {"zoo": {"n": 20, "test_samples": 1000}})
    why = mismatches(digits, other)
    assert why == ["dataset: digits vs mnist1d", "training checkpoints in the zoo: 200 vs 20",
                   "test samples: 540 vs 1000"]
    assert mismatches(digits, run_facts("digits", "cnn", "head.*", rows)) == [
        "generated parameters (collect.target): last-norm:1,head.* vs head.*"]
    assert mismatches(digits, run_facts("digits", "cnn", "last-norm:1,head.*", {"zoo": {"n": 200}})) == []  # unknown
