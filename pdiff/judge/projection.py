"""2D projections of parameter vectors (or latents) for plots: PCA and UMAP.

Projections are for looking at where generated models sit relative to the zoo, so every group
must be projected into *one* shared space (`fit_projection`) and the same input must always give
the same picture: PCA is an exact SVD with a fixed sign convention, UMAP gets a fixed seed.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

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
        """scikit-learn's PCA with the exact LAPACK solver (not the randomized one, so two fits agree
        bit for bit; faster than torch's SVD at these shapes); each axis has its largest-magnitude
        loading positive (sklearn's own sign rule, as SVD signs are arbitrary)."""
        from sklearn.decomposition import PCA  # here: importing sklearn writes KMP_* variables into os.environ

        if x.ndim != 2:
            raise ValueError(f"PCA expects (N, D), got shape {tuple(x.shape)}")
        data = x.detach().double().cpu()
        mean = data.mean(dim=0) if data.shape[0] else torch.zeros(data.shape[1], dtype=torch.float64)
        ratio = torch.zeros(2, dtype=torch.float64)
        k = min(2, *data.shape)
        if k == 0 or not bool((data != data[:1]).any()):  # no rows, or every row the same: no axis
            return cls(mean.to(x.device), torch.zeros(0, data.shape[1], dtype=torch.float64, device=x.device),
                       ratio.to(x.device))
        pca = PCA(n_components=k, svd_solver="full").fit(data.numpy())
        components = torch.from_numpy(pca.components_).double()
        ratio[:k] = torch.from_numpy(pca.explained_variance_ratio_)
        return cls(mean.to(x.device), components.to(x.device), ratio.to(x.device))

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


def umap_2d(x: Tensor, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1, epochs: int = 200) -> Tensor:
    """UMAP of standardized (N, D) rows to (N, 2), deterministic for a given `seed`.

    `random_state=seed` makes umap-learn single-threaded and reproducible. `n_neighbors` is
    clipped to N - 1 so small zoos work; below 4 points UMAP's graph is meaningless, so this
    falls back to PCA of the standardized rows. The distances are computed here (one cdist)
    and given to UMAP as a precomputed metric: for fewer than 4,096 points umap-learn otherwise
    fills the distance matrix through sklearn with a Python call per pair, most of a fit's time
    (benchmarks/bench_analysis.py). `epochs` of layout optimisation: 200 (umap-learn's choice for
    large sets) against its 500 for small ones, with no visible difference at these sizes.
    """
    n = x.shape[0]
    if n < 4:
        return pca_2d(x, standardize_input=True)[0]
    umap, numba = _import_umap()
    data = standardize(x)
    distances = torch.cdist(data, data).cpu().numpy()
    reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, n - 1), min_dist=min_dist, metric="precomputed",
                        random_state=seed, n_jobs=1, init="spectral" if n > 16 else "random", n_epochs=epochs)
    # n_jobs=1 does not reach pynndescent's numba-parallel kernels, and numba's OpenMP layer sets
    # the OpenMP thread count torch uses too: keep numba to one thread and give torch its own back.
    torch_threads, numba_threads = torch.get_num_threads(), numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="using precomputed metric")
            embedding = reducer.fit_transform(distances)
    finally:
        numba.set_num_threads(numba_threads)
        torch.set_num_threads(torch_threads)
    return torch.as_tensor(embedding, dtype=torch.float32, device=x.device)


# --------------------------------------------------------------------------- numba's compile cache


def numba_cache_dir() -> Path:
    """Where compiled UMAP code is kept between processes: $NUMBA_CACHE_DIR, else ~/.cache/pdiff/numba."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pdiff" / "numba"


_UMAP_MODULES: tuple | None = None


def _import_umap() -> tuple:
    """(umap, numba), with numba's on-disk cache turned on for every compiled function of umap
    and pynndescent. umap-learn compiles most of its kernels afresh in every process (about 25 s
    of a cold analysis on this machine: 16 s when pynndescent is imported, 10 s at the first fit);
    cached, a later process loads them in about a second."""
    global _UMAP_MODULES
    if _UMAP_MODULES is not None:
        return _UMAP_MODULES
    os.environ.setdefault("NUMBA_CACHE_DIR", str(numba_cache_dir()))
    import numba
    from numba.core.registry import CPUDispatcher

    numba.config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=numba.NumbaWarning)
        _enable_caching(CPUDispatcher, ("pynndescent",), "pynndescent")
        _enable_caching(CPUDispatcher, ("umap",), "umap")
    import umap

    _UMAP_MODULES = (umap, numba)
    return _UMAP_MODULES


def _enable_caching(dispatcher: type, prefixes: tuple[str, ...], package: str) -> None:
    """Import `package` (its submodules too) and turn on caching for its compiled functions.

    pynndescent compiles some kernels while it is imported, so for it the import runs under a
    hook that enables caching as each function is created."""
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, f"{package}."):
        if not info.name.endswith(("tests", "plot", "parametric_umap", "aligned_umap")) and ".tests" not in info.name:
            try:
                importlib.import_module(info.name)
            except ImportError:  # optional extras (tensorflow, matplotlib bits): not needed here
                continue
    for name, mod in list(sys.modules.items()):
        if mod is None or not name.startswith(prefixes):
            continue
        for value in list(vars(mod).values()):
            if isinstance(value, dispatcher):
                with contextlib.suppress(Exception):  # one numba cannot cache just compiles as before
                    value.enable_caching()


def umap_cache_is_warm() -> bool:
    return any(numba_cache_dir().glob("umap*/*.nbi"))


def warm_up() -> None:
    """Compile (and cache) the UMAP kernels the analysis uses, on a small random set."""
    x = torch.randn(300, 8, generator=torch.Generator().manual_seed(0))
    umap_2d(x, n_neighbors=15)


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
