"""Dataset registry. Every dataset is a pair of in-memory tensor splits.

The default, `digits`, is scikit-learn's bundled 8x8 digits: no download, so a run works on any
machine. Other datasets register a loader that takes the `DataConfig` (local root, download flag).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..core.config import DataConfig
from ..core.registry import DATASETS


@dataclass(frozen=True)
class Dataset:
    """Train and test splits as tensors; images are (N, C, H, W) float, labels (N,) int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    # Optional batch augmentation for classifier training (e.g. random crop + flip).
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


Loader = Callable[[DataConfig], Dataset]


def register_dataset(name: str, loader: Loader) -> None:
    """Make `name` usable as `data.name`; `loader(data_config)` returns a `Dataset`."""
    DATASETS.register(name, loader)


def register_tensors(name: str, x_train: torch.Tensor, y_train: torch.Tensor,
                     x_test: torch.Tensor, y_test: torch.Tensor, num_classes: int | None = None) -> None:
    """Register a dataset from ready tensors (the "bring your own data" path)."""
    classes = int(num_classes or int(torch.cat([y_train, y_test]).max()) + 1)
    dataset = Dataset(x_train.float(), y_train.long(), x_test.float(), y_test.long(), classes)
    register_dataset(name, lambda _config: dataset)


def load_dataset(config: DataConfig) -> Dataset:
    """Load the configured dataset; an unknown name lists the valid ones."""
    dataset = DATASETS.get(config.name)(config)
    return _subset(dataset, config.train_subset, config.test_subset)


def _subset(dataset: Dataset, n_train: int, n_test: int) -> Dataset:
    """Keep the first n samples of each split (0 keeps all); splits are already shuffled."""
    if not n_train and not n_test:
        return dataset
    tr = slice(None, n_train or None)
    te = slice(None, n_test or None)
    return Dataset(dataset.x_train[tr], dataset.y_train[tr], dataset.x_test[te], dataset.y_test[te],
                   dataset.num_classes, dataset.augment)


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


register_dataset("digits", load_digits_dataset)
