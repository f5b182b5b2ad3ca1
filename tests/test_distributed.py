"""Scale-out under torchrun: 2 CPU processes with gloo on loopback."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from pdiff.core.rundir import RunDir, load_tensors
from pdiff.judge.evaluate import BatchedEvaluator
from pdiff.pipeline.report import metrics_table
from pdiff.zoo.classifiers import build_classifier
from pdiff.zoo.params import layout_of, read_vector, select_target

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), *args]
    return subprocess.run(command, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _vectors() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A cnn, 37 perturbed copies of its target (odd, so shards differ in size) and test data."""
    torch.manual_seed(0)
    model = build_classifier("cnn", (1, 8, 8), 10).eval()
    layout = layout_of(model, select_target(model, "last-norm:1,head.*"))
    base = read_vector(model, layout)
    vectors = base + 0.5 * torch.randn(37, layout.dim, generator=torch.Generator().manual_seed(1))
    x = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    y = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(3))
    return model, vectors, x, y


SHARDED_SCRIPT = textwrap.dedent("""
    import sys
    from pdiff.core import distributed
    from pdiff.judge.evaluate import BatchedEvaluator
    from pdiff.zoo.params import layout_of, select_target
    from pdiff.core.rundir import save_tensors
    sys.path.insert(0, {tests!r})
    from test_distributed import _vectors
    rank = distributed.setup()
    model, vectors, x, y = _vectors()
    layout = layout_of(model, select_target(model, "last-norm:1,head.*"))
    result = BatchedEvaluator(model, layout, x, y, chunk_size=5).evaluate_sharded(vectors)
    if rank.rank == 0:
        from pathlib import Path
        save_tensors(Path({out!r}), {{"predictions": result.predictions, "accuracy": result.accuracy,
                                     "mean_probs": result.mean_probs}})
    distributed.teardown()
""")


@pytest.mark.slow
def test_sharded_evaluation_equals_single_process(tmp_path: Path) -> None:
    out = tmp_path / "sharded.safetensors"
    script = tmp_path / "sharded.py"
    script.write_text(SHARDED_SCRIPT.format(tests=str(ROOT / "tests"), out=str(out)))
    proc = _torchrun([str(script)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sharded, _ = load_tensors(out)
    model, vectors, x, y = _vectors()
    layout = layout_of(model, select_target(model, "last-norm:1,head.*"))
    single = BatchedEvaluator(model, layout, x, y).evaluate(vectors)
    assert torch.equal(sharded["predictions"], single.predictions)
    assert torch.equal(sharded["accuracy"], single.accuracy)
    torch.testing.assert_close(sharded["mean_probs"], single.mean_probs)


TINY = ["collect.num_checkpoints=30", "classifier.epochs=10", "autoencoder.steps=250", "diffusion.steps=300",
        "diffusion.timesteps=200", "sample.num_models=21", "baselines.num_models=8", "analysis.umap=false",
        "analysis.bootstrap=100", "sample.trajectory_points=5"]


@pytest.mark.slow
def test_two_process_run_is_complete_and_far_above_chance(tmp_path: Path) -> None:
    out = tmp_path / "dist-run"
    args = ["-m", "pdiff", "run", "--out", str(out), "--quiet"]
    for item in TINY:
        args += ["--set", item]
    proc = _torchrun(args, tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = RunDir(out)
    assert all(stage["status"] == "done" for stage in run.manifest()["stages"].values())
    for name in ("zoo", "base", "autoencoder", "denoiser", "generated", "baselines", "evaluation", "analysis"):
        assert run.file(f"{name}.safetensors").exists(), name
    generated = run.load("generated.safetensors")[0]
    assert generated["params"].shape[0] == 21  # both ranks' shares gathered
    assert metrics_table(run).rows["generated"]["median"] > 50.0  # 10 classes: chance is 10%


@pytest.mark.slow
def test_a_failing_rank_stops_the_job_with_a_message(tmp_path: Path) -> None:
    proc = _torchrun(["-m", "pdiff", "run", "--out", str(tmp_path / "r"), "--quiet",
                      "--set", "data.name=no-such-data"], tmp_path, timeout=120)
    assert proc.returncode != 0
    assert "unknown dataset 'no-such-data'" in proc.stderr
