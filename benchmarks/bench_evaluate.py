"""Batched evaluation (shared prefix once + batched suffix stages) against the reference loop.

500 parameter vectors (a run's zoo, cycled, plus small Gaussian noise so no two are equal) are
evaluated on the digits test split by `BatchedEvaluator` (construction included: the shared
prefix is part of its cost) and by `evaluate_loop` (copy each vector into the model, run the whole
network). Prints how each suffix stage runs (see pdiff/judge/batched_forms.py), the median of 3
timings of each, the speed-up (target >= 5x) and whether the predictions are identical (target:
all of them). Exits 1 when either target is missed (benchmarks/targets.py).

Run from the repository root:
    python -m benchmarks.bench_evaluate [RUN_DIR] [--models 500] [--repeats 3] [--arch cnn] [--threads N]
Without RUN_DIR, a zoo is collected first (the default preset's collect stage only).
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

pdiff.configure_threads(chosen_by="benchmarks/bench_evaluate.py")  # before torch loads (pdiff/core/threads.py)

# isort: split
import torch

from benchmarks.targets import Target, check, exit_code
from pdiff.core.config import with_overrides
from pdiff.core.presets import preset
from pdiff.core.rundir import RunDir
from pdiff.judge.evaluate import BatchedEvaluator, evaluate_loop
from pdiff.pipeline.loaders import load_task, load_zoo
from pdiff.pipeline.runner import load_run_config, run_pipeline

SPEEDUP = Target("speed-up of BatchedEvaluator over evaluate_loop (x)", ">=", 5.0)
IDENTICAL = Target("predictions identical to evaluate_loop's", "==", True)


def timed(fn, repeats: int):
    """(median seconds, every timing, last result): the median resists a shared machine's noise."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path, help="a run with a collected zoo (default: collect one)")
    parser.add_argument("--models", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--arch", default="cnn", help="classifier when collecting a zoo here")
    parser.add_argument("--sigma", type=float, default=0.01, help="noise added to the zoo vectors")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        pdiff.configure_threads(args.threads)  # the count the collect stage records and uses
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="pdiff-bench-") as tmp:
        if args.run is None:
            config = with_overrides(preset("digits"), {"classifier.arch": args.arch, "device": "cpu"})
            print(f"collecting a zoo ({args.arch}, default preset) ...", flush=True)
            run = run_pipeline(Path(tmp) / "run", config, until="collect")
        else:
            run = RunDir(args.run)
            config = load_run_config(run)
        task = load_task(run, config, torch.device("cpu"))
        zoo = load_zoo(run)["params"]

    g = torch.Generator().manual_seed(0)
    vectors = zoo[torch.arange(args.models) % len(zoo)] + args.sigma * torch.randn(args.models, zoo.shape[1], generator=g)
    x, y = task.dataset.x_test, task.dataset.y_test
    print(f"{args.models} vectors of {zoo.shape[1]} target parameters ({config.classifier.arch}, target "
          f"{config.collect.target!r}), {len(y)} test samples, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")

    def batched():
        evaluator = BatchedEvaluator(task.model, task.layout, x, y, config.evaluate.chunk_size, config.evaluate.batch_size)
        return evaluator.evaluate(vectors), evaluator.chunk_size

    plans = BatchedEvaluator(task.model, task.layout, x, y).plans
    print("suffix stages: " + ", ".join(f"{p.name} ({p.kind})" for p in plans))
    t_batched, all_batched, (result, chunk) = timed(batched, args.repeats)
    t_loop, all_loop, (loop_acc, loop_pred) = timed(lambda: evaluate_loop(task.model, task.layout, vectors, x, y),
                                                    args.repeats)
    same = torch.equal(result.predictions, loop_pred)
    print(f"BatchedEvaluator: {t_batched:.3f} s median of {args.repeats} "
          f"({', '.join(f'{t:.3f}' for t in all_batched)}), chunk size {chunk}")
    print(f"evaluate_loop:    {t_loop:.3f} s median of {args.repeats} ({', '.join(f'{t:.3f}' for t in all_loop)})")
    print(f"{int((result.predictions != loop_pred).sum())} of {loop_pred.numel()} predictions differ; "
          f"median accuracy {result.accuracy.median():.2f} (batched) vs {loop_acc.median():.2f} (loop)")
    return exit_code([check(SPEEDUP, t_loop / t_batched), check(IDENTICAL, same)])


if __name__ == "__main__":
    sys.exit(main())
