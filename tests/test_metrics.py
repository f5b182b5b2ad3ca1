"""Metrics against direct set computations and closed-form facts."""
from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from pdiff.judge import metrics


def _random_predictions(n_models: int, n_samples: int, n_classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(n_classes, (n_samples,), generator=g)
    # models mostly right, so wrong sets are small, overlapping and sometimes empty
    wrong = torch.rand(n_models, n_samples, generator=g) < 0.2
    shifted = (labels + torch.randint(1, n_classes, (n_models, n_samples), generator=g)) % n_classes
    return torch.where(wrong, shifted, labels.expand(n_models, -1)), labels


def _iou_by_sets(pred_a: torch.Tensor, pred_b: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    out = torch.empty(len(pred_a), len(pred_b))
    for i, a in enumerate(pred_a):
        wa = {s for s in range(len(labels)) if a[s] != labels[s]}
        for j, b in enumerate(pred_b):
            wb = {s for s in range(len(labels)) if b[s] != labels[s]}
            out[i, j] = len(wa & wb) / len(wa | wb) if wa | wb else 1.0
    return out


def test_accuracy_summary_matches_definitions():
    acc = torch.tensor([90.0, 92.0, 94.0, 100.0])
    s = metrics.accuracy_summary(acc)
    assert s["n"] == 4 and s["best"] == 100.0 and s["min"] == 90.0
    assert s["mean"] == pytest.approx(94.0)
    assert s["median"] == pytest.approx(93.0)  # mean of the two middle values
    assert s["std"] == pytest.approx(math.sqrt((16 + 4 + 0 + 36) / 3))  # sample std, n-1
    assert metrics.accuracy_summary(torch.tensor([97.5]))["std"] == 0.0


def test_bootstrap_contains_mean_and_narrows_with_n():
    g = torch.Generator().manual_seed(0)
    widths = []
    for n in (20, 2000):
        values = 95.0 + torch.randn(n, generator=g)
        lo, hi = metrics.bootstrap_ci(values, n_boot=500, generator=torch.Generator().manual_seed(1))
        assert lo <= values.mean().item() <= hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 4  # width ~ 1/sqrt(n): expected ratio 10


def test_bootstrap_median_and_reproducible():
    values = torch.arange(50, dtype=torch.float32)
    a = metrics.bootstrap_ci(values, stat="median", generator=torch.Generator().manual_seed(3))
    b = metrics.bootstrap_ci(values, stat="median", generator=torch.Generator().manual_seed(3))
    assert a == b and a[0] <= 24.5 <= a[1]
    with pytest.raises(ValueError):
        metrics.bootstrap_ci(values, stat="mode")


def test_iou_matches_set_computation():
    pred_a, labels = _random_predictions(7, 15, 3, seed=0)
    pred_b, _ = _random_predictions(5, 15, 3, seed=1)
    pred_a[0] = labels  # a perfect model: empty wrong set
    pred_b[0] = labels
    assert_close(metrics.wrong_sets_iou(pred_a, labels, pred_b), _iou_by_sets(pred_a, pred_b, labels))
    assert metrics.wrong_sets_iou(pred_a, labels, pred_b)[0, 0] == 1.0  # both empty -> 1


def test_iou_and_agreement_with_unanimous_samples():
    # samples every model gets wrong (same or different class) or right are shortcut, not matmul'd
    pred_a, labels = _random_predictions(6, 20, 4, seed=8)
    pred_b, _ = _random_predictions(5, 20, 4, seed=9)
    pred_a[:, :3], pred_b[:, :3] = labels[:3], labels[:3]  # all right
    pred_a[:, 3:6], pred_b[:, 3:6] = (labels[3:6] + 1) % 4, (labels[3:6] + 1) % 4  # all wrong, same class
    pred_a[:, 6], pred_b[:, 6] = (labels[6] + 1) % 4, (labels[6] + 2) % 4  # all wrong, different classes
    assert_close(metrics.wrong_sets_iou(pred_a, labels, pred_b), _iou_by_sets(pred_a, pred_b, labels))
    expected = (pred_a[:, None, :] == pred_b[None, :, :]).float().mean(dim=2)
    assert_close(metrics.prediction_agreement(pred_a, pred_b), expected)


def test_iou_self_is_symmetric_with_unit_diagonal():
    pred, labels = _random_predictions(12, 40, 4, seed=2)
    iou = metrics.wrong_sets_iou(pred, labels)
    assert iou.dtype == torch.float32 and iou.shape == (12, 12)
    assert_close(iou, iou.T)
    assert torch.all(iou.diagonal() == 1.0)
    assert torch.all((iou >= 0) & (iou <= 1))


def test_agreement_matches_direct_count():
    pred_a, _ = _random_predictions(6, 25, 5, seed=3)
    pred_b, _ = _random_predictions(4, 25, 5, seed=4)
    expected = (pred_a[:, None, :] == pred_b[None, :, :]).float().mean(dim=2)
    assert_close(metrics.prediction_agreement(pred_a, pred_b), expected)
    assert torch.all(metrics.prediction_agreement(pred_a).diagonal() == 1.0)
    other = torch.tensor([[0, 7, 7], [7, 7, 7]])  # a class pred_a never predicts
    assert_close(metrics.prediction_agreement(torch.zeros(1, 3, dtype=torch.long), other), torch.tensor([[1 / 3, 0.0]]))


def test_max_iou_and_novelty_exclude_self():
    iou = torch.tensor([[1.0, 0.3, 0.6], [0.3, 1.0, 0.2], [0.6, 0.2, 1.0]])
    values, index = metrics.max_iou_to_zoo(iou, exclude_self=True)
    assert_close(values, torch.tensor([0.6, 0.3, 0.6]))
    assert index.tolist() == [2, 0, 0]
    assert_close(metrics.novelty(iou), torch.zeros(3))
    assert_close(metrics.novelty(iou, exclude_self=True), torch.tensor([0.4, 0.7, 0.4]))


def test_nearest_neighbour_excludes_self_but_finds_duplicates():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(30, 8, generator=g)
    dist, idx = metrics.nearest_neighbour(x, x, exclude_self=True, chunk=7)
    assert torch.all(dist > 0) and torch.all(idx != torch.arange(30))
    expected = torch.cdist(x, x).fill_diagonal_(float("inf")).min(dim=1)
    assert_close(dist, expected.values)
    assert torch.equal(idx, expected.indices)

    dup = torch.cat([x, x[:3]])  # rows 30..32 duplicate rows 0..2
    dist, idx = metrics.nearest_neighbour(dup, dup, exclude_self=True, chunk=7)
    assert torch.all(dist[[0, 1, 2, 30, 31, 32]] == 0)
    assert idx[:3].tolist() == [30, 31, 32] and idx[30:].tolist() == [0, 1, 2]


def test_nearest_neighbour_to_other_set():
    g = torch.Generator().manual_seed(6)
    ref = torch.randn(20, 4, generator=g)
    x = ref[[3, 7]] + 1e-3
    dist, idx = metrics.nearest_neighbour(x, ref)
    assert idx.tolist() == [3, 7]
    assert_close(dist, torch.full((2,), 2e-3))


def test_nearest_neighbours_are_exact_where_copies_live():
    """A trajectory of checkpoints a few hundredths apart, far from the origin (norm 30), and copies
    of them 1e-3 away: the float32 matmul form of the distance errs by more than the spacing here.
    Distances and neighbours must equal the float64 answer, rounded once to float32."""
    g = torch.Generator().manual_seed(11)
    base = 30 * torch.nn.functional.normalize(torch.randn(394, generator=g), dim=0)
    steps = 0.03 * torch.randn(60, 394, generator=g) / 394 ** 0.5
    zoo = base + steps.cumsum(0)  # (60, D), neighbours ~0.03 apart
    copies = zoo[torch.randint(60, (40,), generator=g)] + 1e-3 * torch.randn(40, 394, generator=g) / 394 ** 0.5
    for x, exclude in ((zoo, True), (copies, False)):
        exact = (x.double()[:, None] - zoo.double()[None]).norm(dim=-1)
        if exclude:
            exact.fill_diagonal_(float("inf"))
        dist, idx = metrics.nearest_neighbour(x, zoo, exclude_self=exclude)
        assert torch.equal(idx, exact.argmin(1)) and torch.equal(dist, exact.min(1).values.float())
        k_dist, k_idx = metrics.k_nearest(x, zoo, 3, exclude)
        assert torch.equal(k_idx, exact.topk(3, largest=False).indices)
        assert torch.equal(k_dist, exact.topk(3, largest=False).values.float())


def test_ensemble_gain():
    g = torch.Generator().manual_seed(7)
    labels = torch.randint(3, (50,), generator=g)
    probs = torch.softmax(torch.randn(50, 3, generator=g), dim=1)
    acc = 100.0 * (probs.argmax(1) == labels).float().mean()
    assert metrics.ensemble_gain(probs, labels, acc.repeat(5)) == pytest.approx(0.0, abs=1e-9)
    # two members wrong on disjoint halves, each 50%; confident when right -> ensemble 100%
    labels = torch.zeros(4, dtype=torch.long)
    p1 = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    p2 = p1.flip(0)
    assert metrics.ensemble_gain((p1 + p2) / 2, labels, torch.tensor([50.0, 50.0])) == pytest.approx(50.0)


def test_a_lone_model_has_no_neighbour_when_self_is_excluded():
    """K = 1 (the paper's smallest zoo): the zoo's own max IoU and nearest neighbour are undefined."""
    values, index = metrics.max_iou_to_zoo(torch.ones(1, 1), exclude_self=True)
    assert torch.isnan(values).all() and index.tolist() == [-1]
    dist, idx = metrics.nearest_neighbour(torch.randn(1, 4), torch.randn(1, 4), exclude_self=True)
    assert torch.isnan(dist).all() and idx.tolist() == [-1]
    with pytest.raises(ValueError, match="the models compared with themselves"):
        metrics.nearest_neighbour(torch.randn(2, 4), torch.randn(3, 4), exclude_self=True)


def test_mean_off_diagonal_ci_brackets_the_mean_and_skips_self_pairs():
    g = torch.Generator().manual_seed(0)
    sim = torch.rand(30, 30, generator=g)
    sim = (sim + sim.T) / 2
    sim.fill_diagonal_(1.0)
    lo, hi = metrics.mean_off_diagonal_ci(sim, 500, generator=g)
    assert lo <= metrics.mean_off_diagonal(sim) <= hi
    # identical members: every off-diagonal pair is 1, whatever the resample (self pairs would also be 1)
    assert metrics.mean_off_diagonal_ci(torch.ones(5, 5), 100, generator=g) == (1.0, 1.0)
    # members that share nothing: a resample counting a member against itself would be above 0
    assert metrics.mean_off_diagonal_ci(torch.eye(6), 200, generator=g) == (0.0, 0.0)
    assert metrics.mean_off_diagonal_ci(torch.ones(1, 1), 10) is None


def test_nearest_concentration():
    top, share, targets = metrics.nearest_concentration(torch.tensor([5, 5, 7, 5, 9, 7, -1, 2]), top=2)
    assert top == [5, 7] and share == pytest.approx(5 / 7) and targets == 4  # -1 (no neighbour) is ignored
    top, share, targets = metrics.nearest_concentration(torch.tensor([3, 1, 2]))
    assert top == [1, 2, 3] and share == 1.0  # ties: the lower index first
    top, share, targets = metrics.nearest_concentration(torch.tensor([-1]))
    assert top == [] and math.isnan(share) and targets == 0
