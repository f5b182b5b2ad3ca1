"""Metrics over many models at once: accuracy statistics, similarity of predictions, neighbours.

p-diff judges generated models by (a) their accuracy against the zoo and (b) how similar their
*behaviour* is to the zoo: the similarity of two models is the IoU of their sets of wrongly
classified test samples, and a generated model's novelty is 1 - its max IoU to any zoo model.
Hundreds of models are compared pairwise, so every pairwise quantity here is a matrix product
of masks, never a Python loop over pairs. Inputs are tensors on any device; outputs live there too.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import stats
from torch import Tensor

# float32 adds integers exactly up to 2**24; chunking the sample axis keeps every partial count
# of a mask matmul below that, so counts from a float32 matmul are exact.
_EXACT_F32_CHUNK = 1 << 23


def accuracy_summary(acc: Tensor) -> dict[str, float]:
    """Best / mean / median / min / std of per-model accuracies (the paper's table columns).

    Accuracies are returned in the unit given (percent in this project). `median` is the mean of
    the two middle values for even n (numpy's convention, not torch's lower median). `std` is the
    sample standard deviation (n-1), 0.0 for a single model.
    """
    acc = acc.detach().reshape(-1).double().cpu()
    n = acc.numel()
    if n == 0:
        raise ValueError("accuracy_summary needs at least one accuracy")
    return {
        "n": n,
        "best": acc.max().item(),
        "mean": acc.mean().item(),
        "median": _median_rows(acc[None])[0].item(),
        "min": acc.min().item(),
        "std": acc.std(correction=1).item() if n > 1 else 0.0,
    }


def median(values: Tensor) -> float:
    """The median of the finite-or-infinite (not NaN) values, numpy's convention for even n; NaN when none."""
    values = values.detach().reshape(-1).double().cpu()
    values = values[~torch.isnan(values)]
    return _median_rows(values[None])[0].item() if values.numel() else float("nan")


def share_at_least(values: Tensor, threshold: float) -> float:
    """Percentage of values >= threshold (e.g. models no more than a point below the zoo's median)."""
    return 100.0 * (values.detach().double() >= threshold).double().mean().item() if values.numel() else float("nan")


def mean_off_diagonal(similarity: Tensor) -> float:
    """Mean similarity between two different members of one group (low = diverse); NaN below 2 members."""
    n = similarity.shape[0]
    if n < 2:
        return float("nan")
    off = ~torch.eye(n, dtype=torch.bool, device=similarity.device)
    return similarity[off].double().mean().item()


def mean_off_diagonal_ci(similarity: Tensor, n_boot: int = 1000, level: float = 0.95,
                         generator: torch.Generator | None = None) -> tuple[float, float] | None:
    """Percentile bootstrap interval of `mean_off_diagonal` over resampled group members.

    A resample draws N members with replacement; the statistic is the mean similarity over pairs
    of *different* original members in it (a member drawn twice is not compared with itself). With
    member counts c (n_boot, N) and W the similarity with a zero diagonal, the pair sum is c W c^T
    and the pair count N^2 - sum c^2: one matmul, no (n_boot, N, N) tensor. None below 2 members.
    """
    n = similarity.shape[0]
    if n < 2:
        return None
    w = similarity.detach().double().clone()
    w.fill_diagonal_(0.0)
    idx = torch.randint(n, (n_boot, n), generator=generator, device=w.device)
    counts = torch.zeros(n_boot, n, dtype=torch.float64, device=w.device).scatter_add_(
        1, idx, torch.ones(n_boot, n, dtype=torch.float64, device=w.device))
    pairs = n * n - (counts ** 2).sum(1)
    sums = ((counts @ w) * counts).sum(1)
    stats = (sums / pairs)[pairs > 0]  # a resample of one member drawn N times has no pair
    if stats.numel() == 0:
        return None
    alpha = (1.0 - level) / 2
    lo, hi = torch.quantile(stats, torch.tensor([alpha, 1.0 - alpha], dtype=stats.dtype, device=stats.device))
    return lo.item(), hi.item()


def nearest_concentration(index: Tensor, top: int = 3) -> tuple[list[int], float, int]:
    """Where a group's nearest zoo models are: the `top` most frequent nearest-neighbour indices
    (most frequent first), the share of models (0..1) whose nearest zoo model is one of them, and
    how many different zoo models are nearest to some model. Index -1 (no neighbour) is ignored;
    ([], nan, 0) when no model has a neighbour. A generator that collapses onto a few training
    checkpoints puts most of its models near a handful of them."""
    index = index.detach().reshape(-1).long().cpu()
    index = index[index >= 0]
    if index.numel() == 0:
        return [], float("nan"), 0
    values, counts = torch.unique(index, return_counts=True)
    order = sorted(range(len(values)), key=lambda i: (-int(counts[i]), int(values[i])))[:top]
    share = float(counts[order].sum()) / index.numel()
    return [int(values[i]) for i in order], share, len(values)


def distinct_rows(predictions: Tensor) -> int:
    """How many different prediction vectors (rows) a group of models makes: a collapsed
    generator makes few, however many models it samples."""
    return int(torch.unique(predictions, dim=0).shape[0]) if predictions.numel() else 0


def distinct_rows_of_subsets(predictions: Tensor, size: int, draws: int, generator: torch.Generator) -> float:
    """Median of `distinct_rows` over `draws` random subsets of `size` rows (without replacement).

    Distinct prediction vectors grow with the number of models, so a group of 100 generated
    models is compared with 100 zoo checkpoints, not with all of the zoo's 200."""
    n = predictions.shape[0]
    if size >= n:
        return float(distinct_rows(predictions))
    counts = [distinct_rows(predictions[torch.randperm(n, generator=generator)[:size]]) for _ in range(draws)]
    return float(torch.tensor(counts, dtype=torch.float64).median())


def _median_rows(x: Tensor) -> Tensor:
    """(R, N) -> (R,) median per row, averaging the two middle values when N is even."""
    n = x.shape[1]
    ordered = x.sort(dim=1).values
    return (ordered[:, (n - 1) // 2] + ordered[:, n // 2]) / 2


def bootstrap_ci(values: Tensor, n_boot: int = 1000, level: float = 0.95,
                 generator: torch.Generator | None = None, stat: str = "mean") -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean or median of `values` (N,).

    scipy.stats.bootstrap (percentile method, vectorized), seeded from `generator` so the same
    generator gives the same interval; it was faster than the torch version this project had
    written before.
    """
    if stat not in ("mean", "median"):
        raise ValueError(f"stat must be 'mean' or 'median', got {stat!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    data = values.detach().reshape(-1).double().cpu().numpy()
    if data.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if data.size == 1 or np.all(data == data[0]):  # every resample is the same: the interval is that value
        return float(data[0]), float(data[0])
    seed = int(torch.randint(2**62, (1,), generator=generator).item())
    result = stats.bootstrap((data,), np.mean if stat == "mean" else np.median, n_resamples=n_boot,
                             confidence_level=level, method="percentile", vectorized=True,
                             rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _count_common(a: Tensor, b: Tensor) -> Tensor:
    """(Na, S) bool x (Nb, S) bool -> (Na, Nb) float64 count of samples where both are True, exact.

    Only informative samples go through the matmul: a sample True in no row of `a` or of `b`
    adds 0 to every pair, one True in every row of both adds 1 to every pair. Models from one
    zoo agree on most test samples, so this usually shrinks the matmul many times over.
    """
    a_any, b_any = a.any(dim=0), b.any(dim=0)
    unanimous = a.all(dim=0) & b.all(dim=0)  # (S,)
    mixed = a_any & b_any & ~unanimous
    out = torch.full((a.shape[0], b.shape[0]), float(unanimous.sum()), dtype=torch.float64, device=a.device)
    a, b = a[:, mixed], b[:, mixed]
    for start in range(0, a.shape[1], _EXACT_F32_CHUNK):
        stop = start + _EXACT_F32_CHUNK
        out += (a[:, start:stop].float() @ b[:, start:stop].float().T).double()
    return out


def wrong_sets_iou(pred_a: Tensor, labels: Tensor, pred_b: Tensor | None = None) -> Tensor:
    """(Na, Nb) IoU |A ∩ B| / |A ∪ B| of the sets of wrongly classified test samples.

    `pred_a` (Na, S) and `pred_b` (Nb, S) are predicted class indices, `labels` (S,). With
    `pred_b=None` the matrix is `pred_a` against itself. Two models that are both never wrong
    behave identically on the test set, so their IoU is defined as 1.0.
    Intersections come from one float32 matmul of wrong-masks; unions from inclusion-exclusion.
    """
    wrong_a = pred_a != labels  # (Na, S)
    wrong_b = wrong_a if pred_b is None else pred_b != labels  # (Nb, S)
    inter = _count_common(wrong_a, wrong_b)  # (Na, Nb)
    union = wrong_a.sum(1).double()[:, None] + wrong_b.sum(1).double()[None, :] - inter
    iou = torch.where(union > 0, inter / union.clamp_min(1.0), torch.ones_like(inter))
    return iou.float()


def prediction_agreement(pred_a: Tensor, pred_b: Tensor | None = None) -> Tensor:
    """(Na, Nb) fraction of test samples on which two models predict the same class.

    Relative to a reference prediction r (the most common prediction of `pred_a` per sample; any
    reference is exact, a typical one keeps the sparse part small), two models
    agree on a sample either both on r or both off r with the same class:
        agree = S - |off_a| - |off_b| + |off_a ∩ off_b| + #(same class, both off r).
    The first part is one dense mask matmul; the second is a sparse (sample, class) one-hot
    product over off-reference predictions only, which are few when models behave alike. The
    cost therefore does not grow with the number of classes as S * C one-hot matmuls would.
    """
    same_set = pred_b is None
    pred_b = pred_a if same_set else pred_b
    if pred_a.shape[1] != pred_b.shape[1]:
        raise ValueError(f"predictions cover different test sets: {pred_a.shape[1]} vs {pred_b.shape[1]} samples")
    n_samples = pred_a.shape[1]
    if n_samples == 0:
        raise ValueError("prediction_agreement needs at least one test sample")
    if pred_a.shape[0] == 0 or pred_b.shape[0] == 0:
        return torch.zeros(pred_a.shape[0], pred_b.shape[0], device=pred_a.device)
    reference = pred_a.mode(dim=0).values  # (S,)
    off_a = pred_a != reference  # (Na, S)
    off_b = off_a if same_set else pred_b != reference  # (Nb, S)
    both_on = (n_samples - off_a.sum(1)[:, None] - off_b.sum(1)[None, :]).double() + _count_common(off_a, off_b)
    n_classes = int(max(pred_a.max(), pred_b.max())) + 1
    one_hot_a = _one_hot_sparse(pred_a, off_a, n_classes)
    one_hot_b = one_hot_a if same_set else _one_hot_sparse(pred_b, off_b, n_classes)
    with warnings.catch_warnings():  # sparse-sparse mm notes that its CSR path is "beta"
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        both_off_same = one_hot_a @ one_hot_b.t()  # (Na, Nb) sparse
    return ((both_on + both_off_same.to_dense().double()) / n_samples).float()


def _one_hot_sparse(pred: Tensor, keep: Tensor, n_classes: int) -> Tensor:
    """(N, S * C) sparse one-hot of the (sample, class) predictions where `keep` is True.

    float32 (faster) while every product entry, at most S, is an integer float32 holds exactly.
    """
    rows, samples = keep.nonzero(as_tuple=True)  # row-major order: indices come out coalesced
    cols = samples * n_classes + pred[rows, samples]
    dtype = torch.float32 if pred.shape[1] < 2**24 else torch.float64
    ones = torch.ones(rows.numel(), dtype=dtype, device=pred.device)
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), ones, (pred.shape[0], pred.shape[1] * n_classes),
                                   check_invariants=False, is_coalesced=True)


def max_similarity(similarity: Tensor, exclude_self: bool = False) -> tuple[Tensor, Tensor]:
    """Row-wise max of a (Na, Nref) similarity matrix and its column index.

    `exclude_self=True` means rows and columns are the same models (a square matrix), so the
    diagonal, a model's similarity to itself, is ignored. A lone model (a 1 x 1 matrix, K = 1)
    then has no other model to compare with: its value is NaN and its index -1.
    """
    if exclude_self:
        _check_square(similarity.shape[0], similarity.shape[1])
        if similarity.shape[0] == 1:
            return _no_neighbour(similarity)
        similarity = similarity.clone()
        similarity.fill_diagonal_(float("-inf"))
    values, index = similarity.max(dim=1)
    return values, index


def _no_neighbour(x: Tensor) -> tuple[Tensor, Tensor]:
    """(NaN, -1) for each row of x: the value and index of a neighbour that does not exist."""
    n = x.shape[0]
    return (torch.full((n,), float("nan"), dtype=torch.float32, device=x.device),
            torch.full((n,), -1, dtype=torch.long, device=x.device))


def max_iou_to_zoo(iou: Tensor, exclude_self: bool = False) -> tuple[Tensor, Tensor]:
    """Each model's highest IoU to any zoo model (Na,) and which zoo model it is (Na,)."""
    return max_similarity(iou, exclude_self)


def novelty(iou: Tensor, exclude_self: bool = False) -> Tensor:
    """p-diff's novelty of each model: 1 - its max IoU to the zoo (0 = behaves like a zoo model)."""
    return 1.0 - max_similarity(iou, exclude_self)[0]


def _check_square(n_rows: int, n_cols: int) -> None:
    if n_rows != n_cols:
        raise ValueError(f"exclude_self needs the models compared with themselves, got {n_rows} x {n_cols}")


def nearest_neighbour(x: Tensor, ref: Tensor, exclude_self: bool = False, chunk: int = 1024,
                      candidates: int = 8) -> tuple[Tensor, Tensor]:
    """L2 distance (Na,) from each row of `x` (Na, D) to its nearest row of `ref` (Nr, D), and its
    index; see `k_nearest`. A lone model (`exclude_self` with one row) has no neighbour: NaN, -1."""
    if exclude_self and x.shape[0] == 1:
        _check_square(x.shape[0], ref.shape[0])
        return _no_neighbour(x)
    distances, index = k_nearest(x, ref, 1, exclude_self, chunk, candidates)
    return distances[:, 0], index[:, 0]


def k_nearest(x: Tensor, ref: Tensor, k: int, exclude_self: bool = False, chunk: int = 1024,
              candidates: int = 8) -> tuple[Tensor, Tensor]:
    """The `k` nearest rows of `ref` (Nr, D) to each row of `x` (Na, D): L2 distances (Na, k) and
    indices (Na, k), nearest first.

    `exclude_self=True` means `x` is `ref`: the diagonal is skipped, so a model is never its own
    neighbour (an exact duplicate elsewhere in `ref` still gives distance 0). The search is
    two-pass: `torch.cdist` in chunks, on vectors centred on `ref`'s mean (the fast matmul form
    ||a||^2 + ||b||^2 - 2ab loses precision in float32 exactly at the short distances where copies
    live, and the more the larger the norms), names the max(`candidates`, 2k) nearest rows, whose
    distances are then recomputed directly in float64 and sorted. The result is exact unless a true
    neighbour is not among the candidates, which needs more candidates than that within float32
    rounding of it.
    """
    if exclude_self:
        _check_square(x.shape[0], ref.shape[0])
    available = ref.shape[0] - int(exclude_self)
    k, m = min(k, available), min(max(candidates, 2 * k), available)
    distances = torch.empty(x.shape[0], k, dtype=x.dtype, device=x.device)
    index = torch.empty(x.shape[0], k, dtype=torch.long, device=x.device)
    centre = ref.mean(0)  # distances do not change; the matmul form's rounding shrinks with the norms
    ref_c = ref - centre
    for start in range(0, x.shape[0], chunk):
        block = x[start:start + chunk]
        d = torch.cdist(block - centre, ref_c)  # (c, Nr), approximate
        if exclude_self:
            rows = torch.arange(d.shape[0], device=d.device)
            d[rows, rows + start] = float("inf")
        near = d.topk(m, dim=1, largest=False).indices  # (c, m) candidates
        exact = (block.double()[:, None, :] - ref.double()[near]).norm(dim=2)  # (c, m), float64
        order = exact.argsort(dim=1, stable=True)[:, :k]
        index[start:start + chunk] = near.gather(1, order)
        distances[start:start + chunk] = exact.gather(1, order).to(x.dtype)
    return distances, index


def ensemble_accuracy(mean_probs: Tensor, labels: Tensor) -> float:
    """Accuracy (percent) of the ensemble that averages its members' probabilities, `mean_probs` (S, C)."""
    return 100.0 * (mean_probs.argmax(dim=1) == labels.to(mean_probs.device)).double().mean().item()


def ensemble_gain(mean_probs: Tensor, labels: Tensor, member_acc: Tensor) -> float:
    """Accuracy (percent) of the averaged-probability ensemble minus the mean member accuracy.

    `mean_probs` (S, C) are the member probabilities averaged over members; `member_acc` (N,)
    in percent. A positive gain means the members make different mistakes: a diversity signal.
    """
    return ensemble_accuracy(mean_probs, labels) - member_acc.double().mean().item()
