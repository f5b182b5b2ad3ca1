"""GPU figures for `gpu_check.sh`: the paper preset on CUDA in fp32 and bf16, evaluation
throughput, peak GPU memory, and a CPU-vs-CUDA comparison of one run's evaluation.

    python -m benchmarks.gpu_figures [--out DIR] [--bf16-steps 3000] [--models 4096]

Everything runs in this process (so peak GPU memory is read with torch.cuda.max_memory_allocated).
The bf16 run uses `--bf16-steps` autoencoder and denoiser steps (the fp32 run the preset's
own) so that both fit the check's time; per-step times make them comparable. Exits 1 when the
CPU and CUDA predictions differ on more than 0.1 % (benchmarks/targets.py); on a machine without
CUDA it says so and exits 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import pdiff

pdiff.configure_threads(chosen_by="benchmarks/gpu_figures.py")  # before torch loads (pdiff/core/threads.py)

# isort: split
import torch

from benchmarks.targets import Target, cannot_run, check, exit_code
from pdiff.core.config import with_overrides
from pdiff.core.presets import preset
from pdiff.core.rundir import RunDir
from pdiff.judge.evaluate import BatchedEvaluator
from pdiff.pipeline.loaders import load_task, model_groups
from pdiff.pipeline.report import metrics_table
from pdiff.pipeline.runner import run_pipeline

MISMATCH = Target("CPU-vs-CUDA predictions that differ (fraction)", "<", 1e-3)


def _umap_available() -> bool:
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


def paper_run(root: Path, precision: str, steps: int | None) -> dict:
    """One paper-preset run on CUDA: wall time, stage seconds, per-step times, peak memory, accuracy."""
    overrides = {"device": "cuda", "precision": precision, "analysis.umap": _umap_available()}
    if steps:
        overrides |= {"autoencoder.steps": steps, "diffusion.steps": steps}
    config = with_overrides(preset("paper"), overrides)
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    run = run_pipeline(root / f"paper-{precision}", config)
    wall = time.perf_counter() - started
    stages = {name: info.get("seconds") for name, info in run.manifest()["stages"].items()}
    card = metrics_table(run).rows
    return {"precision": precision, "wall_s": wall, "stages_s": stages,
            "autoencoder_ms_per_step": 1000 * stages["autoencoder"] / config.autoencoder.steps,
            "denoiser_ms_per_step": 1000 * stages["diffusion"] / config.diffusion.steps,
            "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20,
            "zoo_median": card["zoo"]["median"], "generated_median": card["generated"]["median"],
            "generated_min": card["generated"]["min"], "run": str(run.path)}


def throughput(run: RunDir, models: int, device: torch.device) -> dict:
    """Models evaluated per second on `device`: `models` perturbed zoo vectors, best of 3."""
    config_dict = run.manifest()["config"]
    from pdiff.core.config import config_from_dict

    config = config_from_dict(config_dict)
    task = load_task(run, config, device)
    zoo = model_groups(run)["zoo"]
    vectors = zoo[torch.randint(len(zoo), (models,), generator=torch.Generator().manual_seed(0))]
    vectors = vectors + 0.01 * torch.randn(vectors.shape, generator=torch.Generator().manual_seed(1))
    evaluator = BatchedEvaluator(task.model, task.layout, task.dataset.x_test, task.dataset.y_test)
    evaluator.evaluate(vectors[:64])  # warm-up (kernels, allocator)
    times = []
    for _ in range(3):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        result = evaluator.evaluate(vectors)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return {"device": str(device), "models": models, "seconds": min(times), "models_per_s": models / min(times),
            "chunk_size": evaluator.chunk_size, "predictions": result.predictions}


def cpu_vs_cuda(run: RunDir, models: int) -> dict:
    """The same models evaluated on the CPU and on CUDA: how many predictions differ."""
    cpu = throughput(run, models, torch.device("cpu"))
    gpu = throughput(run, models, torch.device("cuda"))
    differ = (cpu.pop("predictions") != gpu.pop("predictions")).float().mean().item()
    return {"cpu": cpu, "cuda": gpu, "prediction_mismatch_fraction": differ}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/gpu-check")
    parser.add_argument("--bf16-steps", type=int, default=3000, help="AE and denoiser steps of the bf16 run")
    parser.add_argument("--fp32-steps", type=int, default=0, help="0: the preset's own step counts")
    parser.add_argument("--models", type=int, default=4096, help="models for the throughput figure")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        return cannot_run("no CUDA device: this check needs an NVIDIA GPU")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    figures: dict = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        figures["fp32"] = paper_run(root, "fp32", args.fp32_steps or None)
        figures["bf16"] = paper_run(root, "bf16", args.bf16_steps)
        for key in ("fp32", "bf16"):
            f = figures[key]
            print(f"paper {key}: {f['wall_s']:.1f} s wall; stages " +
                  ", ".join(f"{k} {v:.1f}s" for k, v in f["stages_s"].items() if v is not None) +
                  f"; AE {f['autoencoder_ms_per_step']:.2f} ms/step, denoiser {f['denoiser_ms_per_step']:.2f} ms/step; "
                  f"peak GPU memory {f['peak_gpu_mib']:.0f} MiB; zoo median {f['zoo_median']:.2f}, "
                  f"generated median {f['generated_median']:.2f} (min {f['generated_min']:.2f})")
        run = RunDir(figures["fp32"]["run"])
        compare = cpu_vs_cuda(run, min(args.models, 1024))
        figures["cpu_vs_cuda"] = compare
        print(f"evaluation of {compare['cpu']['models']} models: CPU {compare['cpu']['models_per_s']:.0f} models/s, "
              f"CUDA {compare['cuda']['models_per_s']:.0f} models/s "
              f"({compare['cuda']['models_per_s'] / compare['cpu']['models_per_s']:.1f}x); "
              f"predictions differing: {compare['prediction_mismatch_fraction']:.2e}")
        big = throughput(run, args.models, torch.device("cuda"))
        big.pop("predictions")
        figures["cuda_throughput"] = big
        print(f"CUDA evaluation throughput: {big['models_per_s']:.0f} models/s ({big['models']} models, "
              f"{big['chunk_size']} per pass)")
    (out / "figures.json").write_text(json.dumps(figures, indent=2, default=str))
    return exit_code([check(MISMATCH, compare["prediction_mismatch_fraction"])])


if __name__ == "__main__":
    sys.exit(main())
