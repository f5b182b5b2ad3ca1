"""Time importing a zoo of 100 small-CNN checkpoints (bring your own zoo), end to end in-process.

    python -m benchmarks.bench_import [--seeds 5] [--models 100] [--steps 100] [--repeats 3] [--threads N]

Trains `--seeds` small CNNs on digits (5,178 parameters with BatchNorm) from independent seeds
and saves `--models` checkpoints of them along their training, half as .safetensors and half as
.pt, with a zoo.json naming each one's run and step. Then, `--repeats` times into a fresh run
folder (no store: nothing is reused), `run_pipeline(..., until="import")`: the plan hashes the
files, the import stage reads and checks every file, aligns the checkpoints of the independent
runs (zoo.align=auto) and measures every checkpoint's validation and test accuracy. Prints the
median wall time and the import stage's own seconds, with their ratio to the 10 s target, and
checks that each recorded test accuracy equals a plain forward pass of its file's network. Exits 1
when the time is over target or an accuracy differs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pdiff

pdiff.configure_threads(chosen_by="benchmarks/bench_import.py")  # before torch loads

# isort: split
import torch
from safetensors.torch import save_file
from torch import nn

from benchmarks.small_cnns import train
from benchmarks.targets import Target, check, exit_code
from pdiff.core.artifacts import ZOO
from pdiff.core.config import DataConfig, with_overrides
from pdiff.core.presets import preset
from pdiff.pipeline.loaders import load_zoo
from pdiff.pipeline.runner import run_pipeline
from pdiff.zoo.checkpoints import load_state
from pdiff.zoo.classifiers import small_cnn
from pdiff.zoo.datasets import Dataset, load_dataset

TIME = Target("import 100 checkpoints, median wall (s)", "<=", 10.0)
SAME_ACCURACY = Target("every recorded accuracy equals a plain forward pass", "==", True)


def write_zoo(folder: Path, data: Dataset, seeds: int, models: int, steps: int) -> None:
    """`models` checkpoints of `seeds` independent small CNNs, saved evenly along `steps` Adam steps."""
    per_seed = -(-models // seeds)
    saves = set(torch.linspace(steps // 2, steps, per_seed).round().long().tolist())
    rows = []
    for seed in range(seeds):

        def save(step: int, model: nn.Module, seed: int = seed) -> None:
            if step in saves and len(rows) < models:
                state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                name = f"seed{seed}/step{step}" + (".pt" if len(rows) % 2 else ".safetensors")
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                torch.save(state, folder / name) if len(rows) % 2 else save_file(state, folder / name)
                rows.append({"file": name, "run": f"seed{seed}", "step": step})

        train(seed, data, steps, save)
    (folder / "zoo.json").write_text(json.dumps(rows))


@torch.no_grad()
def plain_accuracy(path: Path, name: str, data: Dataset) -> float:
    model = small_cnn(data.input_shape, data.num_classes)
    model.load_state_dict(load_state(path, name))
    return (model.eval()(data.x_test).argmax(1) == data.y_test).float().mean().item() * 100


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="independently trained networks")
    parser.add_argument("--models", type=int, default=100, help="checkpoints in the zoo")
    parser.add_argument("--steps", type=int, default=100, help="training steps per seed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ["PDIFF_STORE"] = "off"  # every repeat reads and measures everything
    data = load_dataset(DataConfig(name="digits"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "zoo"
        start = time.perf_counter()
        write_zoo(folder, data, args.seeds, args.models, args.steps)
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        print(f"{args.models} small-CNN checkpoints of {args.seeds} seeds ({size / 2**20:.1f} MiB, .pt and "
              f".safetensors) written in {time.perf_counter() - start:.1f} s; torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads")
        config = with_overrides(preset("digits"), {"zoo.dir": str(folder), "device": "cpu"})
        walls, stages, run = [], [], None
        for i in range(args.repeats):
            start = time.perf_counter()
            run = run_pipeline(Path(tmp) / f"run{i}", config, until="import")
            walls.append(time.perf_counter() - start)
            stages.append(run.stage("import")["seconds"])
        metrics = run.stage("import")["metrics"]
        zoo, meta = load_zoo(run), run.load(ZOO)[1]
        wrong = [r["file"] for r, acc in zip(meta["checkpoints"], zoo["accuracy"].tolist())
                 if abs(acc - plain_accuracy(folder / r["file"], r["file"], data)) > 1e-4]
    wall, stage = statistics.median(walls), statistics.median(stages)
    print(f"import ({metrics['num_checkpoints']} training checkpoints + {metrics['fresh']} fresh, D={metrics['dim']}, "
          f"aligned: {metrics['aligned']}): {wall:.2f} s wall median of {args.repeats} "
          f"({', '.join(f'{w:.2f}' for w in walls)}), stage {stage:.2f} s")
    print(f"recorded test accuracy equals a plain forward pass of the file: "
          f"{'all' if not wrong else 'NOT ' + ', '.join(wrong[:3])}")
    return exit_code([check(TIME, wall), check(SAME_ACCURACY, not wrong)])


if __name__ == "__main__":
    sys.exit(main())
