"""Cases of known nature for checking the answer to "new or copied?".

The verdict (judge/verdict.py) is only as good as what it says about groups whose nature is known
by construction. `known_cases(run, ...)` builds such groups from a finished run, never from its
generator:

| case | built as | the answer it must get |
|---|---|---|
| copies 0.3 % / 1 % / 3 % | training checkpoints + noise at that share of each coordinate's zoo spread | copies |
| one checkpoint x N | a single training checkpoint, repeated | collapsed |
| random parameters | every target parameter drawn from N(0, 1) | worse |
| fresh SGD, unseen | an independent SGD run from the zoo's start with a data order no part of the run used | like fresh training |
| averages of 16 | each the mean of 16 random training checkpoints: inside the zoo's hull, not one of its points | between |
| half-zoo generator | training checkpoints drawn from the first half of the trajectory only | copies (covering half the zoo) |

`judge_case(run, params)` puts one group in the place of the run's generated models (in a copy of
the run), redoes evaluation and analysis, and returns the verdict, so a case is judged by exactly
the code that judges a generator. `benchmarks/bench_verdict.py` runs every case on several tasks
and seeds and prints the confusion table; the test suite runs a small version.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from .core.artifacts import GENERATED
from .core.rundir import RunDir
from .core.runtime import make_generator, resolve_device
from .generator.baselines import averaged, copies
from .judge.verdict import Verdict
from .pipeline.loaders import load_codec, load_task, training_rows
from .pipeline.report import metrics_table
from .pipeline.runner import load_run_config, run_stage
from .zoo.collect import fresh_trajectory
from .zoo.params import read_vector

COPY_LEVELS = (0.003, 0.01, 0.03)
UNSEEN_SEED = 2**31 - 1  # data orders counted down from here: far from every seed a run derives


@dataclass(frozen=True)
class Case:
    name: str
    truth: str  # the verdict's answer it must get
    params: torch.Tensor  # (N, D)
    expect_uncovered: bool = False  # the fidelity caveat should say the generator does not cover the zoo


def known_cases(run: RunDir, n: int = 100, seed: int = 0) -> list[Case]:
    """Every case of the table above, `n` models each, built from `run`'s training checkpoints and
    its classifier (the fresh run from the classifier's trained state, so the run's zoo must start
    there: not `collect.reinit`)."""
    config = load_run_config(run)
    if config.collect.reinit:
        raise ValueError("known cases need a zoo that starts from the trained classifier (collect.reinit=false)")
    zoo = training_rows(run).float()
    gen = make_generator(seed)
    cases = [Case(f"copies {level:.1%}", "copies", copies(zoo, level, n, gen).params) for level in COPY_LEVELS]
    cases.append(Case(f"one checkpoint x{n}", "collapsed", zoo[torch.randint(len(zoo), (1,), generator=gen)].repeat(n, 1)))
    cases.append(Case("random parameters", "worse", torch.randn(n, zoo.shape[1], generator=gen)))
    cases.append(Case("fresh SGD, unseen", "like fresh training", unseen_fresh_run(run, n, seed)))
    cases.append(Case("averages of 16", "between", averaged(zoo, 16, n, gen).params))
    half = zoo[: max(1, len(zoo) // 2)]
    cases.append(Case("half-zoo generator", "copies", half[torch.randint(len(half), (n,), generator=gen)],
                      expect_uncovered=True))
    return cases


def unseen_fresh_run(run: RunDir, n: int, seed: int) -> torch.Tensor:
    """`n` checkpoints, evenly spaced, of an SGD run with the zoo's recipe from the zoo's start (the
    trained classifier), with a data order of its own: like the run's fresh reference, but another."""
    config = load_run_config(run)
    task = load_task(run, config, torch.device("cpu"))
    start = read_vector(task.model, task.layout)
    length = -(-config.collect.num_checkpoints // config.collect.seeds)
    fresh = fresh_trajectory(task.model, start, task.dataset, task.layout.names, config.collect, length,
                             min(n, length), config.classifier.batch_size, make_generator(UNSEEN_SEED - seed))
    return fresh.params


def judge_case(run: RunDir, params: torch.Tensor, scratch: Path) -> Verdict:
    """The verdict for `params` in the place of the run's generated models (judged in a copy of
    the run under `scratch`, which is replaced)."""
    if scratch.exists():
        shutil.rmtree(scratch)
    shutil.copytree(run.path, scratch)
    case = RunDir(scratch)
    config = load_run_config(case)
    device = resolve_device(config.device)
    codec = load_codec(case, config, device)
    _generated, meta = case.load(GENERATED)
    empty = torch.zeros(0, 0, params.shape[1])
    case.save(GENERATED, {"params": params.float(), "latents": codec.encode(params.float()).float().cpu(),
                          "trajectory": empty, "trajectory_steps": torch.zeros(0, dtype=torch.long)}, meta)
    for stage in ("evaluate", "analyse"):
        run_stage(case, config, stage, device)
    return metrics_table(case).verdict()
