"""DDIM (50 steps) against DDPM ancestral sampling (all T=1000 steps) on a finished run.

For each sampler: the time to sample N=100 models (latents -> decoded parameter vectors;
median of 3, same seed each time) and the accuracy of the sampled models on the test split
(batched evaluation). Prints the speed-up of DDIM (target >= 20x) and the difference of the
median accuracies (target: within 0.5 points); exits 1 when either is missed (benchmarks/targets.py).

Run from the repository root:
    python -m benchmarks.bench_sampling [RUN_DIR] [--models 100] [--repeats 3] [--ddim-steps 50] [--threads N]
Without RUN_DIR, the default preset is trained here up to its diffusion stage first.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import pdiff

pdiff.configure_threads(chosen_by="benchmarks/bench_sampling.py")  # before torch loads (pdiff/core/threads.py)

# isort: split
import torch

from benchmarks.targets import Target, check, exit_code
from pdiff.core.config import with_overrides
from pdiff.core.presets import preset
from pdiff.core.rundir import RunDir
from pdiff.core.runtime import make_generator, resolve_device
from pdiff.judge.evaluate import BatchedEvaluator
from pdiff.pipeline.loaders import load_generator, load_task
from pdiff.pipeline.runner import load_run_config, run_pipeline

SPEEDUP = Target("DDIM speed-up over DDPM (x)", ">=", 20.0)
ACC_DIFF = Target("|median accuracy DDIM - DDPM| (points)", "<=", 0.5)


def bench(run: RunDir, models: int, repeats: int, ddim_steps: int) -> int:
    """Time both samplers on `run`, evaluate their models, judge the targets; the exit code."""
    config = load_run_config(run)
    device = resolve_device(config.device)
    generator = load_generator(run, config, device)
    task = load_task(run, config, device)
    evaluator = BatchedEvaluator(task.model, task.layout, task.dataset.x_test, task.dataset.y_test)
    timesteps = generator.diffusion.timesteps
    print(f"run {run.path}: T={timesteps}, latent {generator.denoiser.length}, {models} models, device {device}, "
          f"{torch.get_num_threads()} threads")

    rows = {}
    # DDPM takes all T steps (steps=0); since `sample.steps` applies to both samplers, passing 50
    # to DDPM would time a respaced 50-step DDPM instead.
    for sampler, steps, label in (("ddim", ddim_steps, f"DDIM {ddim_steps} steps"), ("ddpm", 0, f"DDPM {timesteps} steps")):
        times, params = [], None
        for _ in range(repeats):
            start = time.perf_counter()
            params = generator.sample(models, make_generator(config.seed, device), sampler, steps).params
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        acc = evaluator.evaluate(params).accuracy
        rows[sampler] = (label, statistics.median(times), times, acc)
        print(f"{label:>16}: {statistics.median(times):7.3f} s median of {repeats} "
              f"({', '.join(f'{t:.3f}' for t in times)}) | accuracy median {acc.median():.2f} "
              f"mean {acc.mean():.2f} best {acc.max():.2f} min {acc.min():.2f}")

    diff = rows["ddim"][3].median().item() - rows["ddpm"][3].median().item()
    print(f"median accuracy DDIM - DDPM: {diff:+.2f} points")
    return exit_code([check(SPEEDUP, rows["ddpm"][1] / rows["ddim"][1]), check(ACC_DIFF, abs(diff))])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path, help="a run whose diffusion stage is done (default: train one)")
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ddim-steps", type=int, default=50)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        pdiff.configure_threads(args.threads)  # the count the training stages record and use
        torch.set_num_threads(args.threads)
    if args.run is not None:
        return bench(RunDir(args.run), args.models, args.repeats, args.ddim_steps)
    with tempfile.TemporaryDirectory(prefix="pdiff-bench-") as tmp:
        print("training the default preset up to its diffusion stage ...", flush=True)
        run = run_pipeline(Path(tmp) / "run", with_overrides(preset("digits"), {}), until="diffusion")
        return bench(run, args.models, args.repeats, args.ddim_steps)


if __name__ == "__main__":
    sys.exit(main())
