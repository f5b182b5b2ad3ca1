"""The numbers the explorer's teaching pages quote (Denoising, Autoencoder), computed once here so
the pages only show them: the accuracy of the decoded x0-prediction along sampling, decoding pure
noise, and what the autoencoder costs a checkpoint. Pure: arrays in, numbers out.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .statements import sample_step


@dataclass(frozen=True)
class Trajectory:
    """The sampling trajectory in numbers: the mean accuracy of the tracked samples' decoded
    x0-prediction at t = T (`first`) and t = 0 (`last`), the zoo's median, the median of decoding pure
    noise (None without the decoder-only baseline), and one test sample's worth of accuracy."""

    t_max: int
    first: float
    last: float
    zoo: float
    noise: float | None
    step: float


def trajectory(steps: np.ndarray, accuracy: np.ndarray, zoo: np.ndarray, noise: np.ndarray | None,
               test_samples: int | None) -> Trajectory:
    """`steps` (P,) from T - 1 down to 0, `accuracy` (P, M) of M tracked samples at each step."""
    accuracy = np.asarray(accuracy, dtype=float)
    return Trajectory(int(np.asarray(steps)[0]), float(accuracy[0].mean()), float(accuracy[-1].mean()),
                      float(np.median(zoo)), None if noise is None else float(np.median(noise)),
                      sample_step(test_samples))


def mean_at(accuracy: np.ndarray, row: int) -> float:
    """The tracked samples' mean accuracy at one recorded step (`accuracy` (P, M))."""
    return float(np.asarray(accuracy, dtype=float)[row].mean())


def step_index(steps: np.ndarray, t: int) -> int:
    """The row of the trajectory recorded at step t (the nearest recorded step when t is not one)."""
    steps = np.asarray(steps)
    return int(np.argmin(np.abs(steps - t)))


@dataclass(frozen=True)
class Reconstruction:
    """One checkpoint before and after the autoencoder, and the zoo's medians of both."""

    index: int
    before: float
    after: float
    zoo_median: float
    reconstructed_median: float

    @property
    def change(self) -> float:
        return self.after - self.before


def reconstruction(zoo: np.ndarray, reconstructed: np.ndarray, index: int) -> Reconstruction:
    """Checkpoint `index`'s accuracy before (`zoo`) and after (`reconstructed`) encoding and decoding."""
    return Reconstruction(int(index), float(zoo[index]), float(reconstructed[index]), float(np.median(zoo)),
                          float(np.median(reconstructed)))
