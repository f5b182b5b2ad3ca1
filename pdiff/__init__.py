"""pdiff: neural network parameter diffusion (p-diff), end to end, with the analysis to judge it.

Stages (each a function of a run directory, see `pipeline.STAGES`): collect -> autoencoder ->
diffusion -> sample -> baselines -> evaluate -> analyse. `run_pipeline` runs them all.
"""
from .threads import choose_wait_policy

choose_wait_policy()  # before anything below loads torch's OpenMP runtime (see threads.py)

from . import architectures, mnist1d, vision_data  # noqa: F401  (register datasets, classifiers, presets)
from .classifiers import register_classifier
from .config import ConfigError, RunConfig, preset, register_preset, with_overrides
from .data import Dataset, register_dataset, register_tensors
from .pipeline import load_run_config, run_pipeline, run_stage
from .runs import RunDir, RunError, list_runs, runs_root

__all__ = ["ConfigError", "Dataset", "RunConfig", "RunDir", "RunError", "list_runs", "load_run_config", "preset",
           "register_classifier", "register_dataset", "register_preset", "register_tensors", "run_pipeline",
           "run_stage", "runs_root", "with_overrides"]
