"""Small CNNs on a dataset, briefly trained from independent seeds: the zoos of several runs that
bench_alignment and bench_import measure on. No thread choice here: the benchmark that imports
this has made it already, before torch loaded."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from pdiff.zoo.classifiers import small_cnn
from pdiff.zoo.datasets import Dataset


def train(seed: int, data: Dataset, steps: int,
          after_step: Callable[[int, nn.Module], None] | None = None) -> nn.Module:
    """A briefly trained small CNN (Adam, batch 64): different seeds give different basins.
    `after_step(step, model)` is called after every step (1-based), e.g. to save checkpoints."""
    torch.manual_seed(seed)
    model = small_cnn(data.input_shape, data.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    order = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(1, steps + 1):
        idx = torch.randint(len(data.y_train), (64,), generator=order)
        loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if after_step is not None:
            after_step(step, model)
    return model.eval()
