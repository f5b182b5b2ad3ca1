"""Datasets: three in-memory tensor splits, train, validation and test.

The default, `digits`, is scikit-learn's bundled 8x8 digits: no download, so a run works on any
machine. Other datasets register a loader that takes the `DataConfig` (local root, download flag).

Every run has a validation split: what a choice is made on (the accuracy guided generation
conditions on), so that the test split only measures. A loader that returns train and test alone
gets its validation split carved out of train by `load_dataset`: `data.val_fraction` of each
class, picked with a fixed seed, so the same data give the same three splits everywhere.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..core.config import DataConfig
from ..core.registry import DATASETS

VAL_SEED = 0  # the permutation that picks each class's validation samples


@dataclass(frozen=True)
class Dataset:
    """Train, test and validation splits as tensors; images are (N, C, H, W) float, labels (N,)
    int64. A loader may leave the validation split out (None): `load_dataset` then carves it."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    # Optional batch augmentation for classifier training (e.g. random crop + flip).
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


Loader = Callable[[DataConfig], Dataset]


def register_dataset(name: str, loader: Loader) -> None:
    """Make `name` usable as `data.name`; `loader(data_config)` returns a `Dataset`."""
    DATASETS.register(name, loader)


def register_tensors(name: str, x_train: torch.Tensor, y_train: torch.Tensor,
                     x_test: torch.Tensor, y_test: torch.Tensor, num_classes: int | None = None,
                     x_val: torch.Tensor | None = None, y_val: torch.Tensor | None = None) -> None:
    """Register a dataset from ready tensors (the "bring your own data" path). Without `x_val` and
    `y_val`, the validation split is carved out of the training tensors (`data.val_fraction`)."""
    if (x_val is None) != (y_val is None):
        raise ValueError("give both x_val and y_val, or neither (then validation is carved out of train)")
    labels = [y_train, y_test] + ([y_val] if y_val is not None else [])
    classes = int(num_classes or int(torch.cat(labels).max()) + 1)
    dataset = Dataset(x_train.float(), y_train.long(), x_test.float(), y_test.long(), classes, None,
                      None if x_val is None else x_val.float(), None if y_val is None else y_val.long())
    register_dataset(name, lambda _config: dataset)


def read_dataset(config: DataConfig) -> Dataset:
    """The dataset as its loader reads it (validation not carved yet, no subsets taken); an unknown
    name lists the valid ones."""
    return DATASETS.get(config.name)(config)


def load_dataset(config: DataConfig) -> Dataset:
    """Load the configured dataset with its three splits."""
    dataset = read_dataset(config)
    if dataset.x_val is None:
        dataset = carve_validation(dataset, config.val_fraction)
    return _subset(dataset, config.train_subset, config.test_subset)


def carve_validation(dataset: Dataset, fraction: float) -> Dataset:
    """Move `fraction` of each class's training samples (at least one per class that has two) to a
    validation split, chosen by a fixed-seed permutation; the rest keep their order in train."""
    generator = torch.Generator().manual_seed(VAL_SEED)
    order = torch.randperm(len(dataset.y_train), generator=generator)
    chosen = torch.zeros(len(dataset.y_train), dtype=torch.bool)
    for label in dataset.y_train.unique():
        members = order[dataset.y_train[order] == label]  # this class, in the permutation's order
        take = min(len(members) - 1, max(1, round(fraction * len(members))))
        chosen[members[:take]] = True
    return replace(dataset, x_train=dataset.x_train[~chosen], y_train=dataset.y_train[~chosen],
                   x_val=dataset.x_train[chosen], y_val=dataset.y_train[chosen])


def _subset(dataset: Dataset, n_train: int, n_test: int) -> Dataset:
    """Keep the first n samples of each split (0 keeps all); splits are already shuffled."""
    if not n_train and not n_test:
        return dataset
    tr = slice(None, n_train or None)
    te = slice(None, n_test or None)
    return replace(dataset, x_train=dataset.x_train[tr], y_train=dataset.y_train[tr], x_test=dataset.x_test[te],
                   y_test=dataset.y_test[te])


def load_digits_dataset(_config: DataConfig) -> Dataset:
    """scikit-learn's 8x8 digits, stratified 70/30 split with a fixed seed, scaled to [0, 1]."""
    from sklearn.datasets import load_digits  # here, not at the top: importing sklearn writes KMP_* variables
    from sklearn.model_selection import train_test_split  # into os.environ, and importing pdiff changes nothing

    bunch = load_digits()
    x = (bunch.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
    mean, std = x_tr.mean(), x_tr.std()
    x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    return Dataset(torch.from_numpy(x_tr), torch.from_numpy(y_tr),
                   torch.from_numpy(x_te), torch.from_numpy(y_te), num_classes=10)

