"""Smoke run of the paper's `cifar10-resnet18` preset on this CPU: time and artifacts.

    python -m benchmarks.bench_cifar_smoke [--data-root DIR]

Settings (issue 6): 1 epoch on a 1,000-image training subset (and 1,000 test images), K=10
checkpoints, 20 autoencoder and 20 DDPM training steps, at the preset's paper-size networks
(batches of 10 = K: a batch of 200 drawn from 10 checkpoints only repeats them).
Sampling uses DDIM with 20 steps (1000-step ancestral sampling of the paper-size denoiser is a
GPU job). Without --data-root the script writes a synthetic CIFAR-10 in the real binary format
(random pixels: accuracy is at chance; the point is time and completeness). Prints the stage
times and judges the total against the 10-minute target and that every artifact exists; exits 1
on a miss or a failed run, and 2 (one line, nothing run) when --data-root holds neither
cifar-10-batches-bin nor cifar-10-batches-py (benchmarks/targets.py).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.targets import MISSED, Target, cannot_run, check, exit_code
from pdiff.pipeline.table import STAGES

CIFAR_FOLDER = "cifar-10-batches-bin"  # the binary layout written here; the loader also reads the pickled one
CIFAR_FOLDERS = (CIFAR_FOLDER, "cifar-10-batches-py")
ARTIFACTS = ["run.json"] + [name for stage in STAGES for name in stage.writes]
SMOKE = ["classifier.epochs=1", "data.train_subset=1000", "data.test_subset=1000", "collect.num_checkpoints=10",
         "autoencoder.steps=20", "diffusion.steps=20", "autoencoder.batch_size=10", "diffusion.batch_size=10",
         "sample.sampler=ddim", "sample.steps=20", "sample.num_models=10", "baselines.num_models=4",
         "sample.trajectory_points=5"]
TOTAL = Target("smoke run, wall time (s)", "<=", 600.0)
MISSING = Target("artifacts missing after the run", "<=", 0)


def write_synthetic_cifar10(root: Path, per_batch: int = 200, test: int = 1000) -> None:
    """CIFAR-10 binary layout: records of 1 label byte + 3072 pixel bytes."""
    folder = root / CIFAR_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name in names:
        n = test if name == "test_batch.bin" else per_batch
        records = np.concatenate([rng.integers(0, 10, (n, 1)), rng.integers(0, 256, (n, 3072))], axis=1)
        (folder / name).write_bytes(records.astype(np.uint8).tobytes())


def smoke_run(data_root: Path, out: Path) -> float | None:
    """Wall seconds of the smoke run into `out`, or None when it failed (its stderr went to ours)."""
    command = [sys.executable, "-m", "pdiff", "run", "--preset", "cifar10-resnet18", "--data-root", str(data_root),
               "--out", str(out), "--quiet", "--device", "cpu"]
    for item in SMOKE:
        command += ["--set", item]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, check=False)
    return time.perf_counter() - start if result.returncode == 0 else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, help=f"folder holding {' or '.join(CIFAR_FOLDERS)} (default: synthetic)")
    args = parser.parse_args(argv)
    if args.data_root and not any((args.data_root / name).is_dir() for name in CIFAR_FOLDERS):
        return cannot_run(f"no {' or '.join(CIFAR_FOLDERS)} under {args.data_root} "
                          f"(leave out --data-root for synthetic data)")
    with tempfile.TemporaryDirectory() as tmp:
        data_root = args.data_root or Path(tmp) / "data"
        if not args.data_root:
            write_synthetic_cifar10(data_root)
        out = Path(tmp) / "run"
        total = smoke_run(data_root, out)
        if total is None:
            print("the smoke run FAILED")
            return MISSED
        print("\nstage times:")
        for name, stage in json.loads((out / "run.json").read_text())["stages"].items():
            print(f"  {name:12s} {stage.get('seconds', float('nan')):8.1f} s  {stage['status']}")
        missing = [a for a in ARTIFACTS if not (out / a).exists()]
        print("artifacts: all in place" if not missing else f"artifacts missing: {', '.join(missing)}")
        return exit_code([check(TOTAL, total), check(MISSING, len(missing))])


if __name__ == "__main__":
    sys.exit(main())
