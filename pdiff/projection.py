"""2D projections of parameter vectors (or latents) for plots: PCA and UMAP.

Projections are for looking at where generated models sit relative to the zoo, so every group
must be projected into *one* shared space (`fit_projection`) and the same input must always give
the same picture: PCA is an exact SVD with a fixed sign convention, UMAP gets a fixed seed.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

METHODS = ("pca", "umap")


def standardize(x: Tensor) -> Tensor:
    """Per-column z-score in float64; constant columns become 0 instead of dividing by 0."""
    x = x.detach().double()
    std = x.std(dim=0, correction=0)
    return (x - x.mean(dim=0)) / torch.where(std > 0, std, torch.ones_like(std))


@dataclass(frozen=True)
class PCABasis:
    """The centre and the first two principal axes of a set of rows, to place new rows later
    (e.g. the denoising trajectory) in the same picture as the rows it was fitted on."""

    mean: Tensor  # (D,) float64
    components: Tensor  # (k, D) float64, k <= 2
    ratio: Tensor  # (2,) explained variance ratio

    @classmethod
    def fit(cls, x: Tensor) -> PCABasis:
        """Exact SVD (not the randomized `pca_lowrank`) so two fits agree bit for bit; each axis
        is flipped so its largest-magnitude loading is positive (SVD signs are arbitrary)."""
        if x.ndim != 2:
            raise ValueError(f"PCA expects (N, D), got shape {tuple(x.shape)}")
        data = x.detach().double()
        mean = data.mean(dim=0) if data.shape[0] else torch.zeros(data.shape[1], dtype=torch.float64, device=x.device)
        ratio = torch.zeros(2, dtype=torch.float64, device=x.device)
        if data.numel() == 0:
            return cls(mean, torch.zeros(0, data.shape[1], dtype=torch.float64, device=x.device), ratio)
        _, s, vt = torch.linalg.svd(data - mean, full_matrices=False)  # vt: (min(N, D), D)
        k = min(2, vt.shape[0])
        components = vt[:k] * _sign_of_largest_loading(vt[:k])[:, None]
        total = (s ** 2).sum()
        if total > 0:
            ratio[:k] = s[:k] ** 2 / total
        return cls(mean, components, ratio)

    def transform(self, x: Tensor) -> Tensor:
        """(N, D) -> (N, 2) float32; missing axes (N < 2, D < 2) are zeros."""
        coords = torch.zeros(x.shape[0], 2, dtype=torch.float64, device=x.device)
        coords[:, : len(self.components)] = (x.detach().double() - self.mean) @ self.components.T
        return coords.float()


def pca_2d(x: Tensor, standardize_input: bool = False) -> tuple[Tensor, Tensor]:
    """Project (N, D) onto its first two principal components: (N, 2) coords and (2,) variance ratio.

    Constant data or N < 2 / D < 2 give zeros for the missing components (see `PCABasis`).
    """
    data = standardize(x) if standardize_input else x
    basis = PCABasis.fit(data)
    return basis.transform(data), basis.ratio.float()


def _sign_of_largest_loading(components: Tensor) -> Tensor:
    """(k, D) -> (k,) +1/-1 such that each row's largest-|.| entry becomes positive."""
    largest = components.gather(1, components.abs().argmax(dim=1, keepdim=True))[:, 0]
    return torch.where(largest < 0, -1.0, 1.0).to(components.dtype)


def umap_2d(x: Tensor, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1) -> Tensor:
    """UMAP of standardized (N, D) rows to (N, 2), deterministic for a given `seed`.

    `random_state=seed` makes umap-learn single-threaded and reproducible. `n_neighbors` is
    clipped to N - 1 so small zoos work; below 4 points UMAP's graph is meaningless, so this
    falls back to PCA of the standardized rows. umap is imported here, not at module import,
    because its first import JIT-compiles for 10-20 s.
    """
    n = x.shape[0]
    if n < 4:
        return pca_2d(x, standardize_input=True)[0]
    import numba
    import umap  # lazy: slow numba JIT on first import

    data = standardize(x).cpu().numpy()
    reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, n - 1), min_dist=min_dist,
                        random_state=seed, n_jobs=1, init="spectral" if n > 16 else "random")
    # n_jobs=1 does not reach pynndescent's numba-parallel kernels, and numba's OpenMP layer sets
    # the OpenMP thread count torch uses too: keep numba to one thread and give torch its own back.
    torch_threads, numba_threads = torch.get_num_threads(), numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        embedding = reducer.fit_transform(data)
    finally:
        numba.set_num_threads(numba_threads)
        torch.set_num_threads(torch_threads)
    return torch.as_tensor(embedding, dtype=torch.float32, device=x.device)


def fit_projection(groups: dict[str, Tensor], method: str = "pca", **kwargs) -> dict[str, Tensor]:
    """Fit one projection on all groups together and split it back: {name: (N_g, 2)}.

    Fitting per group would give each group its own axes, and comparing zoo with generated
    models across plots would be meaningless. `kwargs` go to `pca_2d` or `umap_2d`.
    """
    if method not in METHODS:
        raise ValueError(f"unknown projection {method!r}; choose one of {', '.join(METHODS)}")
    names = list(groups)
    if not names:
        return {}
    sizes = [groups[name].shape[0] for name in names]
    stacked = torch.cat([groups[name].detach().flatten(1).double() for name in names])
    coords = pca_2d(stacked, **kwargs)[0] if method == "pca" else umap_2d(stacked, **kwargs)
    return dict(zip(names, coords.split(sizes)))
