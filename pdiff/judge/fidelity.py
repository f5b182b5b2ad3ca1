"""Does a generator cover its training set? Distribution-level fidelity of generated samples.

Accuracy and IoU judge generated models one at a time; they cannot see a generator that makes
only a few good models, or the same one a hundred times. The functions here compare two *sets*
of vectors (latents or parameters), each (N, D): the generated set against the reference set the
generator learned from.

- `spread_ratio`: per-dimension spread, generated over reference (1 = same spread, 0 = collapse).
- `frechet_distance`: distance between Gaussians fitted to the two sets (mean and covariance).
- `precision_recall`, `density_coverage`: k-nearest-neighbour manifold estimates. Precision =
  how many generated samples look like reference samples; recall = how much of the reference is
  covered by generated samples.

Set metrics have finite-sample bias, and the reference here (one SGD trajectory, a few hundred
points) is small. So every estimate comes with a floor measured the same way: one random half
of the reference against the other half (`split_half_frechet`, `self_precision_recall`), with
the generated set cut to the same size (`fidelity_report`). A generator is as good as these
metrics can tell when it reaches the floor.

All functions are vectorised (distance matrices and one SVD, no loops over pairs), compute in
float64 and return Python numbers.
"""
from __future__ import annotations

import torch
from torch import Tensor


def _check_sets(a: Tensor, b: Tensor) -> None:
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected two (N, D) sets with the same D, got {tuple(a.shape)} and {tuple(b.shape)}")


def spread_ratio(generated: Tensor, reference: Tensor, rel_tol: float = 1e-6) -> float:
    """Median over dimensions of std(generated) / std(reference), per dimension.

    A direct read-out of mode collapse: a generator that puts every sample near the mean has a
    ratio near 0, one that adds noise around the data a ratio above 1. It is invariant to any
    per-dimension affine map (so it reads the same in raw and standardized latents). Dimensions
    the reference does not use (std below `rel_tol` times its largest std) are skipped: the
    ratio is undefined there. NaN when no dimension is left. Stds are sample stds (n - 1).
    """
    _check_sets(generated, reference)
    ref_std = reference.double().std(0)
    gen_std = generated.double().std(0)
    used = ref_std > rel_tol * ref_std.max().clamp_min(1e-300)
    if not used.any():
        return float("nan")
    return (gen_std[used] / ref_std[used]).median().item()


def _centred_factor(x: Tensor) -> Tensor:
    """A (r, D) factor F with F^T F = sample covariance of x (N, D), r = min(N, D).

    F = R of the QR decomposition of the centred, 1/sqrt(N - 1)-scaled rows: QR keeps the
    covariance exact (Q has orthonormal columns) and makes F small when N > D.
    """
    x = x.double()
    centred = (x - x.mean(0)) / max(x.shape[0] - 1, 1) ** 0.5
    return torch.linalg.qr(centred, mode="r").R


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """Fréchet (2-Wasserstein) distance between Gaussians fitted to the rows of a (Na, D) and b (Nb, D).

    FD = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a^1/2 S_b S_a^1/2)^1/2) (as in FID).
    It grows with a mean shift and with any mismatch of spread or correlation, so a collapsed
    generator scores badly even when every sample is individually good.

    The cross term is computed without a matrix square root: with S_a = Fa^T Fa and
    S_b = Fb^T Fb, the eigenvalues of S_a^1/2 S_b S_a^1/2 are the squared singular values of
    Fa Fb^T, so the trace of its square root is the nuclear norm of Fa Fb^T. That is exact and
    stable when N < D (rank-deficient covariances, where scipy's sqrtm goes complex or NaN).
    """
    _check_sets(a, b)
    fa, fb = _centred_factor(a), _centred_factor(b)
    mean_term = (a.double().mean(0) - b.double().mean(0)).square().sum()
    cross = torch.linalg.svdvals(fa @ fb.T).sum()
    fd = mean_term + fa.square().sum() + fb.square().sum() - 2 * cross
    return max(fd.item(), 0.0)  # rounding can leave -1e-15 for identical sets


def _split(n: int, generator: torch.Generator | None, device: torch.device) -> tuple[Tensor, Tensor]:
    """Two disjoint random halves of range(n), n // 2 indices each."""
    perm = torch.randperm(n, generator=generator, device=generator.device if generator is not None else "cpu")
    perm = perm.to(device)
    half = n // 2
    return perm[:half], perm[half:2 * half]


def _subset(x: Tensor, size: int, generator: torch.Generator | None) -> Tensor:
    perm = torch.randperm(len(x), generator=generator, device=generator.device if generator is not None else "cpu")
    return x[perm[:size].to(x.device)]


def split_half_frechet(reference: Tensor, generator: torch.Generator | None = None, repeats: int = 5) -> float:
    """FD between two random halves of the reference, averaged over `repeats` splits.

    The floor of `frechet_distance` for this reference: what a perfect generator (a fresh draw
    from the same distribution) would score. The estimate is biased upward by finite samples,
    and the bias depends on the sizes of BOTH sets: comparing a full generated set of N with a
    reference of N would not be biased like this half-vs-half floor, and would look better than
    it is. So compare a generated subset of the same size against one half (`fidelity_report`).
    """
    if len(reference) < 4:
        raise ValueError("split_half_frechet needs at least 4 reference rows")
    total = 0.0
    for _ in range(repeats):
        first, second = _split(len(reference), generator, reference.device)
        total += frechet_distance(reference[first], reference[second])
    return total / repeats


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """k-NN manifold precision and recall (Kynkäänniemi et al. 2019).

    Each set's manifold is the union of balls around its samples, each ball's radius the
    distance to that sample's k-th nearest neighbour in its own set. Precision = fraction of
    fake samples inside the real manifold (are generated samples realistic?); recall = fraction
    of real samples inside the fake manifold (does the generator cover the data?). A collapsed
    generator keeps precision and loses recall. Both need k < N of each set.
    """
    _check_sets(real, fake)
    if not 0 < k < min(len(real), len(fake)):
        raise ValueError(f"k must be in [1, {min(len(real), len(fake)) - 1}], got {k}")
    real, fake = real.double(), fake.double()
    real_radius = _knn_radius(real, k)  # (N,)
    fake_radius = _knn_radius(fake, k)  # (M,)
    d = torch.cdist(fake, real)  # (M, N)
    precision = (d <= real_radius[None, :]).any(1).double().mean()
    recall = (d <= fake_radius[:, None]).any(0).double().mean()
    return precision.item(), recall.item()


def density_coverage(real: Tensor, fake: Tensor, k: int = 5) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020): precision and recall made robust to outliers.

    Only real samples define balls (k-NN radius in the real set). Density = average number of
    real balls holding a fake sample, divided by k (about 1 when fake matches real, above 1
    where fakes crowd dense regions). Coverage = fraction of real balls holding at least one
    fake sample; a single generated outlier cannot inflate it as it inflates `recall`.
    """
    _check_sets(real, fake)
    if not 0 < k < len(real):
        raise ValueError(f"k must be in [1, {len(real) - 1}], got {k}")
    real, fake = real.double(), fake.double()
    radius = _knn_radius(real, k)  # (N,)
    inside = torch.cdist(fake, real) <= radius[None, :]  # (M, N)
    density = inside.double().sum() / (k * len(fake))
    coverage = inside.any(0).double().mean()
    return density.item(), coverage.item()


def _knn_radius(x: Tensor, k: int) -> Tensor:
    """(N,) distance of each row to its k-th nearest other row (itself, at 0, is the 0th)."""
    return torch.cdist(x, x).kthvalue(k + 1, dim=1).values


def self_precision_recall(reference: Tensor, k: int = 3, generator: torch.Generator | None = None,
                          repeats: int = 5) -> tuple[float, float]:
    """Precision and recall of one random half of the reference against the other half.

    The reference of `precision_recall` for a generator judged against one half (as
    `fidelity_report` does): a fresh draw from the data scores this, not 1, because k-NN balls
    of a finite set leave gaps. Averaged over `repeats` random splits.
    """
    p_sum = r_sum = 0.0
    for _ in range(repeats):
        first, second = _split(len(reference), generator, reference.device)
        p, r = precision_recall(reference[first], reference[second], k)
        p_sum, r_sum = p_sum + p, r_sum + r
    return p_sum / repeats, r_sum / repeats


def fidelity_report(reference: Tensor, generated: Tensor, generator: torch.Generator | None = None,
                    k: int = 3, repeats: int = 5) -> dict[str, float]:
    """All set metrics of `generated` against `reference`, each beside its split-half floor.

    Each repeat splits the reference at random into halves A and B and cuts the generated set
    to h = min(|B|, |generated|) rows, and B to h rows too. Then `generated` vs A and B vs A are
    the same comparison with the same sample sizes, so their finite-sample biases match:
    fd / fd_floor, precision / self_precision, recall / self_recall, coverage / self_coverage.
    `spread_ratio` uses the full sets (it is not biased by size, only noisier).
    """
    _check_sets(reference, generated)
    keys = ("fd", "fd_floor", "precision", "recall", "self_precision", "self_recall",
            "density", "coverage", "self_density", "self_coverage")
    sums = dict.fromkeys(keys, 0.0)
    for _ in range(repeats):
        first, second = _split(len(reference), generator, reference.device)
        h = min(len(second), len(generated))
        real, other, fake = reference[first], reference[second[:h]], _subset(generated, h, generator)
        values = (frechet_distance(real, fake), frechet_distance(real, other),
                  *precision_recall(real, fake, k), *precision_recall(real, other, k),
                  *density_coverage(real, fake, k), *density_coverage(real, other, k))
        for key, value in zip(keys, values):
            sums[key] += value
    report = {key: value / repeats for key, value in sums.items()}
    report["spread_ratio"] = spread_ratio(generated, reference)
    return report
