"""The stages of a run, each declared once: the config keys it reads, the artifacts it reads and
writes, and its function (one module per stage in `stages/`).

The pipeline turns these declarations into fingerprints (fingerprint.py) to decide what to reuse,
and enforces them while a stage runs (contract.py); the app, the report, the ablation runner and
the tests take stage order and artifact names from `STAGES`.
"""
from __future__ import annotations

from ..core.artifacts import ANALYSIS, AUTOENCODER, BASE, BASELINES, DENOISER, DYNAMICS, EVALUATION, GENERATED, ZOO
from ..core.errors import RunError
from .contract import Stage
from .stages import analyse, autoencoder, baselines, collect, diffusion, dynamics, evaluate, sample

STAGES: tuple[Stage, ...] = (
    Stage("collect", collect.run, ("seed", "precision", "data.name", "data.train_subset", "data.test_subset",
                                   "data.val_fraction", "classifier", "collect"), (), (BASE, ZOO), uses_data=True),
    Stage("autoencoder", autoencoder.run, ("seed", "precision", "autoencoder"), (ZOO,), (AUTOENCODER,)),
    Stage("diffusion", diffusion.run, ("seed", "precision", "diffusion"), (ZOO, AUTOENCODER), (DENOISER,)),
    Stage("sample", sample.run, ("seed", "sample"), (ZOO, AUTOENCODER, DENOISER), (GENERATED,)),
    Stage("baselines", baselines.run, ("seed", "baselines"), (ZOO, AUTOENCODER), (BASELINES,), main_only=True),
    Stage("evaluate", evaluate.run, ("precision", "evaluate"), (BASE, ZOO, GENERATED, BASELINES), (EVALUATION,),
          uses_data=True),
    Stage("analyse", analyse.run, ("seed", "analysis"), (ZOO, AUTOENCODER, GENERATED, BASELINES, EVALUATION),
          (ANALYSIS,), main_only=True),
    Stage("dynamics", dynamics.run, ("seed", "analysis.snapshot_models", "analysis.snapshot_steps", "analysis.bootstrap",
                                         "sample"),
          (BASE, ZOO, AUTOENCODER, DENOISER, EVALUATION, ANALYSIS), (DYNAMICS,), uses_data=True, main_only=True),
)
STAGE_NAMES: list[str] = [s.name for s in STAGES]
BY_NAME: dict[str, Stage] = {s.name: s for s in STAGES}
PRODUCER: dict[str, str] = {name: s.name for s in STAGES for name in s.writes}
# Config keys no stage's result depends on: where data comes from (its content is fingerprinted)
# and the requested device (the device kind it resolves to is fingerprinted instead).
NOT_RESULTS = ("device", "data.root", "data.download")


def upstream(stage: Stage) -> list[str]:
    """The stages whose artifacts `stage` reads, in pipeline order."""
    producers = {PRODUCER[name] for name in stage.reads}
    return [s for s in STAGE_NAMES if s in producers]


def readable_keys(stage: Stage) -> tuple[str, ...]:
    """The config keys `stage` may read: its own, those of every stage it reads from, directly or
    not (their fingerprints, part of its own, cover them), and the keys that change no result."""
    keys = list(stage.config_keys) + list(NOT_RESULTS)
    for name in upstream(stage):
        keys += readable_keys(BY_NAME[name])
    return tuple(dict.fromkeys(keys))


def get_stage(name: str) -> Stage:
    if name not in BY_NAME:
        raise RunError(f"unknown stage {name!r}; stages are: {', '.join(STAGE_NAMES)}")
    return BY_NAME[name]
