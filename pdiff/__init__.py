"""pdiff: neural network parameter diffusion (p-diff), end to end, with the analysis to judge it.

The package is a house of wings whose imports point only down:

    core       config, presets, errors, registries, the run folder, runtime, threads, training loop
    zoo        datasets, classifiers, target parameters, collecting a zoo, importing one, neuron alignment
    generator  normalizer, autoencoders, denoisers, diffusion, samplers, sampling, baselines
    judge      batched evaluation, metrics, fidelity, projections, analysis, verdict, comparison
    pipeline   the stage contract and table, one module per stage, plan, runner, store, report
    cli, guide, export, ablation   entry points and tools on top

Stages (see `pipeline.table`): collect (or import, for checkpoints trained elsewhere: zoo.dir) ->
autoencoder -> diffusion -> sample -> baselines -> evaluate -> analyse; `run_pipeline` runs them
all (without the generator's four when generate=false: a zoo explored alone).

Importing pdiff loads nothing and changes nothing (no environment variable, thread count or
other global state): the names below are imported from their modules the first time they are
used. Notebooks call `pdiff.configure_threads()` before importing torch (see core/threads.py).
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

_PUBLIC: dict[str, str] = {
    "ConfigError": "pdiff.core.errors",
    "RunError": "pdiff.core.errors",
    "RunConfig": "pdiff.core.config",
    "with_overrides": "pdiff.core.config",
    "preset": "pdiff.core.presets",
    "register_preset": "pdiff.core.presets",
    "configure_threads": "pdiff.core.threads",
    "RunDir": "pdiff.core.rundir",
    "list_runs": "pdiff.core.rundir",
    "runs_root": "pdiff.core.rundir",
    "Dataset": "pdiff.zoo.datasets",
    "register_dataset": "pdiff.zoo.datasets",
    "register_tensors": "pdiff.zoo.datasets",
    "build_classifier": "pdiff.zoo.classifiers",
    "register_classifier": "pdiff.zoo.classifiers",
    "register_sampler": "pdiff.generator.samplers",
    "load_run_config": "pdiff.pipeline.runner",
    "run_pipeline": "pdiff.pipeline.runner",
    "run_stage": "pdiff.pipeline.runner",
    "metrics_table": "pdiff.pipeline.report",
    "load_exported": "pdiff.export",
}
__all__ = ["ConfigError", "Dataset", "RunConfig", "RunDir", "RunError", "build_classifier", "configure_threads", "list_runs", "load_exported", "load_run_config", "metrics_table", "preset", "register_classifier", "register_dataset", "register_preset", "register_sampler", "register_tensors", "run_pipeline", "run_stage", "runs_root", "with_overrides"]


def __getattr__(name: str) -> Any:
    """The public names, imported on first use (PEP 562), so `import pdiff` stays free of torch."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'pdiff' has no attribute {name!r}")
    return getattr(import_module(_PUBLIC[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
