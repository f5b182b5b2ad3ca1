"""The sizes of one run, end to end: what the pipeline diagram of the explorer teaches with.

p-diff generates only part of a classifier. The rest (the frozen backbone) is the trained
classifier's, shared by every model, which is why even decoded noise can already be a fair
classifier. `anatomy` reads those sizes from the run's own files (the base state dict, the zoo,
the generated models, the config), so the diagram says "these 394 numbers are generated, these
4,800 are frozen" for this run and not for a textbook one.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.artifacts import BASE, GENERATED, ZOO
from ..core.config import RunConfig
from ..core.rundir import RunDir

BUFFERS = ("running_mean", "running_var", "num_batches_tracked")  # state, not parameters


@dataclass(frozen=True)
class Anatomy:
    dataset: str
    input_shape: tuple[int, ...]
    num_classes: int
    splits: dict[str, int]  # train / validation / test samples
    classifier: str
    total_params: int  # every trainable parameter of the classifier
    target: tuple[tuple[str, int], ...]  # (tensor name, numbers) of the generated part, in layout order
    zoo: int  # training checkpoints the generator learns from
    heldout: int
    fresh: int
    normalization: str
    autoencoder: str
    latent_dim: int
    timesteps: int
    denoiser: str
    sampler: str
    sampling_steps: int
    generated: int

    @property
    def target_params(self) -> int:
        return sum(n for _, n in self.target)

    @property
    def frozen_params(self) -> int:
        return self.total_params - self.target_params


def anatomy(run: RunDir, config: RunConfig) -> Anatomy:
    """The run's sizes from its files (base, zoo, generated) and its config."""
    base, meta = run.load(BASE)
    total = sum(t.numel() for name, t in base.items() if not name.endswith(BUFFERS))
    layout = meta.get("layout") or []
    target = tuple((s["name"], _numel(s["shape"])) for s in layout)
    zoo = run.load(ZOO)[0]
    heldout = int(zoo["heldout"].sum()) if "heldout" in zoo else 0
    fresh = int(zoo["fresh.params"].shape[0]) if "fresh.params" in zoo else 0
    generated = int(run.load(GENERATED)[0]["params"].shape[0]) if run.file(GENERATED).exists() else 0
    a, d, s = config.autoencoder, config.diffusion, config.sample
    normalization = ("centred on the zoo's mean, one spread" if a.centre else "each tensor z-scored over the zoo")
    return Anatomy(config.data.name, tuple(meta.get("input_shape") or ()), int(meta.get("num_classes") or 0),
                   dict(meta.get("splits") or {}), config.classifier.arch, total, target,
                   int(zoo["params"].shape[0]) - heldout, heldout, fresh, normalization, a.arch, a.latent_dim,
                   d.timesteps, d.denoiser, s.sampler, sampling_steps(s.sampler, s.steps, d.timesteps), generated)


def sampling_steps(sampler: str, steps: int, timesteps: int) -> int:
    """How many denoising steps sampling takes (sample.steps 0 means the sampler's default)."""
    if steps > 0:
        return min(steps, timesteps)
    return timesteps if sampler == "ddpm" else min(50, timesteps)


def _numel(shape: list[int]) -> int:
    out = 1
    for n in shape:
        out *= int(n)
    return out
