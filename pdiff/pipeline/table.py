"""The stages of a run, each declared once: the config keys it reads, the artifacts it reads and
writes, and its function (one module per stage in `stages/`).

A run's pipeline depends on two keys: its zoo is collected by training (`collect`) or imported
from checkpoint files (`import`, when `zoo.dir` is set), and it has the generator stages (and the
training dynamics after the analysis) unless `generate` is false (a zoo explored alone: the zoo
stage, evaluate, analyse). `STAGES` is the
default pipeline; `pipeline_for(config)` gives any run's.

The pipeline turns these declarations into fingerprints (fingerprint.py) to decide what to reuse,
and enforces them while a stage runs (contract.py); the app, the report, the ablation runner and
the tests take stage order and artifact names from here.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.artifacts import ANALYSIS, AUTOENCODER, BASE, BASELINES, DENOISER, DYNAMICS, EVALUATION, GENERATED, ZOO
from ..core.config import RunConfig
from ..core.errors import RunError
from .contract import Stage
from .stages import analyse, autoencoder, baselines, collect, diffusion, dynamics, evaluate, import_zoo, sample

DATA_KEYS = ("data.name", "data.train_subset", "data.test_subset", "data.val_fraction")
COLLECT = Stage("collect", collect.run, ("seed", "precision", *DATA_KEYS, "classifier", "collect"), (), (BASE, ZOO),
                uses_data=True)
# The training recipe plays no part in an imported zoo: only the network's name does.
IMPORT = Stage("import", import_zoo.run, ("seed", "precision", *DATA_KEYS, "classifier.arch", "zoo"), (), (BASE, ZOO),
               uses_data=True, uses_files=True)
GENERATOR: tuple[Stage, ...] = (
    Stage("autoencoder", autoencoder.run, ("seed", "precision", "autoencoder"), (ZOO,), (AUTOENCODER,)),
    Stage("diffusion", diffusion.run, ("seed", "precision", "diffusion"), (ZOO, AUTOENCODER), (DENOISER,)),
    Stage("sample", sample.run, ("seed", "sample"), (ZOO, AUTOENCODER, DENOISER), (GENERATED,)),
    Stage("baselines", baselines.run, ("seed", "baselines"), (ZOO, AUTOENCODER), (BASELINES,), main_only=True),
)
# `generate` decides which groups there are to evaluate (its upstream shows it too).
EVALUATE = Stage("evaluate", evaluate.run, ("precision", "generate", "evaluate"), (BASE, ZOO, GENERATED, BASELINES),
                 (EVALUATION,), uses_data=True)
ANALYSE = Stage("analyse", analyse.run, ("seed", "analysis"), (ZOO, AUTOENCODER, GENERATED, BASELINES, EVALUATION),
                (ANALYSIS,), main_only=True)
# Models of every denoiser snapshot judged like the final generator: memorization along training.
DYNAMICS_STAGE = Stage("dynamics", dynamics.run, ("seed", "analysis.snapshot_models", "analysis.snapshot_steps",
                                                  "analysis.bootstrap", "sample"),
                       (BASE, ZOO, AUTOENCODER, DENOISER, EVALUATION, ANALYSIS), (DYNAMICS,), uses_data=True,
                       main_only=True)

STAGES: tuple[Stage, ...] = (COLLECT, *GENERATOR, EVALUATE, ANALYSE, DYNAMICS_STAGE)
ALL_STAGES: tuple[Stage, ...] = (COLLECT, IMPORT, *GENERATOR, EVALUATE, ANALYSE, DYNAMICS_STAGE)
STAGE_NAMES: list[str] = [s.name for s in STAGES]
BY_NAME: dict[str, Stage] = {s.name: s for s in ALL_STAGES}
PRODUCER: dict[str, str] = {name: s.name for s in STAGES for name in s.writes}
# Config keys no stage's result depends on: where data comes from (its content is fingerprinted)
# and the requested device (the device kind it resolves to is fingerprinted instead).
NOT_RESULTS = ("device", "data.root", "data.download")
# Each stage's place in the default pipeline seeds it (StageContext.seed): import takes collect's.
SEED_INDEX: dict[str, int] = {name: i for i, name in enumerate(STAGE_NAMES)} | {"import": 0}


def pipeline(zoo_dir: str = "", generate: bool = True) -> tuple[Stage, ...]:
    """The stages of a run that imports its zoo from `zoo_dir` (else collects it), with or without a generator."""
    return (IMPORT if zoo_dir else COLLECT, *(GENERATOR if generate else ()), EVALUATE, ANALYSE,
            *((DYNAMICS_STAGE,) if generate else ()))


def pipeline_for(config: RunConfig) -> tuple[Stage, ...]:
    return pipeline(config.zoo.dir, config.generate)


def pipeline_of(stored: Mapping[str, Any] | None) -> tuple[Stage, ...]:
    """The pipeline of a config as run.json stores it (a dict; keys it lacks take their defaults)."""
    stored = stored if isinstance(stored, Mapping) else {}
    zoo = stored.get("zoo") if isinstance(stored.get("zoo"), Mapping) else {}
    generate = stored.get("generate", True)
    return pipeline(str(zoo.get("dir") or ""), generate if isinstance(generate, bool) else True)


def names(stages: tuple[Stage, ...]) -> list[str]:
    return [s.name for s in stages]


def upstream(stage: Stage, stages: tuple[Stage, ...] = STAGES) -> list[str]:
    """The stages of `stages` whose artifacts `stage` reads, in pipeline order."""
    return [s.name for s in stages if s.name != stage.name and set(s.writes) & set(stage.reads)]


def absent_inputs(stage: Stage, stages: tuple[Stage, ...]) -> tuple[str, ...]:
    """The artifacts `stage` declares as reads that no stage of `stages` writes."""
    made = {name for s in stages for name in s.writes}
    return tuple(name for name in stage.reads if name not in made)


def readable_keys(stage: Stage, stages: tuple[Stage, ...] = STAGES) -> tuple[str, ...]:
    """The config keys `stage` may read: its own, those of every stage it reads from, directly or
    not (their fingerprints, part of its own, cover them), and the keys that change no result."""
    keys = list(stage.config_keys) + list(NOT_RESULTS)
    for name in upstream(stage, stages):
        keys += readable_keys(BY_NAME[name], stages)
    return tuple(dict.fromkeys(keys))


def get_stage(name: str, stages: tuple[Stage, ...] | None = None) -> Stage:
    """The stage called `name` (of `stages`, when given); a one-line RunError lists the valid ones."""
    if name not in BY_NAME:
        raise RunError(f"unknown stage {name!r}; stages are: {', '.join(names(stages) if stages else BY_NAME)}")
    if stages is not None and BY_NAME[name] not in stages:
        raise RunError(f"this run has no {name!r} stage; its stages are: {', '.join(names(stages))}")
    return BY_NAME[name]
