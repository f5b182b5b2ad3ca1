"""The command line: `python -m pdiff run | presets | report | analyse` through `pdiff.cli.main`.

User errors must end with exit code 2 and one `error: ...` line on stderr, never a traceback.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from conftest import MICRO_OVERRIDES, REPO, as_set_args, copy_run

from pdiff import cli
from pdiff.core.rundir import RunDir
from pdiff.judge import metrics
from pdiff.pipeline.table import STAGE_NAMES


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_presets_lists_digits_and_paper(capsys):
    code, out, _ = run_cli(capsys, "presets")
    assert code == 0
    names = [line.split()[0] for line in out.strip().splitlines()]
    assert "digits" in names and "paper" in names
    code, out, _ = run_cli(capsys, "presets", "--keys")
    assert code == 0 and "autoencoder.steps=2000" in out and "sample.sampler=\"ddpm\"" in out


def test_python_dash_m_pdiff_presets():
    result = subprocess.run([sys.executable, "-m", "pdiff", "presets"], cwd=REPO, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "digits" in result.stdout and "paper" in result.stdout


def test_unknown_preset_is_a_one_line_error(capsys, tmp_path):
    code, _, err = run_cli(capsys, "run", "--preset", "imagenet", "--out", str(tmp_path / "x"))
    assert code == 2
    assert_one_line_error(err, "unknown preset 'imagenet'", "digits", "paper")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("value,needles", [
    ("autoencoder.steps=lots", ["autoencoder.steps", "expects int", "lots"]),
    ("autoencoder.steps=-3", ["autoencoder.steps", "must be > 0"]),
    ("autoencoder.stepz=3", ["unknown config key 'autoencoder.stepz'", "steps"]),
    ("sample.sampler=euler", ["sample.sampler", "euler"]),
    ("autoencoder.steps", ["key=value"]),
])
def test_bad_set_value_is_a_one_line_error(capsys, tmp_path, value, needles):
    code, _, err = run_cli(capsys, "run", "--out", str(tmp_path / "x"), "--set", value)
    assert code == 2
    assert_one_line_error(err, *needles)
    assert not (tmp_path / "x").exists()


def test_report_of_a_non_run_is_a_one_line_error(capsys, tmp_path):
    code, _, err = run_cli(capsys, "report", str(tmp_path))
    assert code == 2
    assert_one_line_error(err, "not a pdiff run directory")


def test_report_json_has_zoo_and_generated_rows(capsys, tiny_run):
    code, out, _ = run_cli(capsys, "report", str(tiny_run.path), "--json")
    assert code == 0
    record = json.loads(out)
    card = record["groups"]
    assert {"zoo", "fresh", "generated", "copies"} <= set(card)
    from pdiff.pipeline.report import metrics_table

    answer = metrics_table(tiny_run).verdict()
    assert record["verdict"]["answer"] == answer.answer and record["verdict"]["headline"] == answer.headline
    assert set(record["ruler"]) == {"behaviour", "parameters"}
    evaluation = tiny_run.load("evaluation.safetensors")[0]
    for group in ("zoo", "generated"):
        assert card[group]["n"] == len(evaluation[f"{group}.accuracy"])
        assert card[group]["best"] == pytest.approx(evaluation[f"{group}.accuracy"].max().item())
        assert card[group]["median"] == pytest.approx(metrics.median(evaluation[f"{group}.accuracy"]))
        assert card[group]["min"] == pytest.approx(evaluation[f"{group}.accuracy"].min().item())
    code, out, _ = run_cli(capsys, "report", str(tiny_run.path))
    assert code == 0
    rows = {line.split()[0] for line in out.strip().splitlines()[2:]}
    assert {"zoo", "generated", "gaussian"} <= rows


def test_damaged_artifacts_give_one_line_errors(capsys, tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "damaged")
    zoo = run.file("zoo.safetensors")
    zoo.write_bytes(zoo.read_bytes()[:100])
    code, _, err = run_cli(capsys, "analyse", str(run.path))
    assert code == 2
    assert_one_line_error(err, "zoo.safetensors", "damaged")
    assert run.stage("analyse")["status"] == "failed"
    run = copy_run(tiny_run, tmp_path / "damaged-analysis")
    analysis = run.file("analysis.safetensors")
    analysis.write_bytes(analysis.read_bytes()[:-10])
    code, _, err = run_cli(capsys, "report", str(run.path))
    assert code == 2
    assert_one_line_error(err, "analysis.safetensors", "damaged")


def test_python_dash_m_pdiff_report_on_truncated_run(tiny_run, tmp_path):
    """The real entry point: exit code 2, one line, no traceback."""
    from pdiff.pipeline.runner import reset_from

    run = copy_run(tiny_run, tmp_path / "damaged")
    reset_from(run, "analyse")  # no current analysis: report reads the evaluation
    evaluation = run.file("evaluation.safetensors")
    evaluation.write_bytes(evaluation.read_bytes()[: evaluation.stat().st_size // 2])
    result = subprocess.run([sys.executable, "-m", "pdiff", "report", str(run.path)], cwd=REPO,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "evaluation.safetensors", "damaged")


def test_run_resume_and_force_from_the_command_line(capsys, tmp_path):
    out_dir = tmp_path / "cli-run"
    args = ["run", "--out", str(out_dir), "--quiet", *as_set_args(MICRO_OVERRIDES)]
    code, out, _ = run_cli(capsys, *args)
    assert code == 0
    assert f"run directory: {out_dir}" in out and "generated" in out  # prints the scorecard table
    run = RunDir(out_dir)
    assert all(run.stage_done(s) for s in STAGE_NAMES)
    first = {p.name: p.stat().st_mtime_ns for p in out_dir.glob("*.safetensors")}

    assert run_cli(capsys, *args)[0] == 0  # finished: nothing is recomputed
    assert {p.name: p.stat().st_mtime_ns for p in out_dir.glob("*.safetensors")} == first

    assert run_cli(capsys, *args, "--force", "diffusion")[0] == 0
    second = {p.name: p.stat().st_mtime_ns for p in out_dir.glob("*.safetensors")}
    for name in ("base.safetensors", "zoo.safetensors", "autoencoder.safetensors"):
        assert second[name] == first[name], name
    for name in ("denoiser.safetensors", "generated.safetensors", "evaluation.safetensors", "analysis.safetensors"):
        assert second[name] != first[name], name

    code, _, err = run_cli(capsys, *args, "--force", "training")
    assert code == 2
    assert_one_line_error(err, "unknown stage 'training'", "collect")

    # An existing run resumes from its stored config: no need to repeat the --set values.
    code, out, _ = run_cli(capsys, "run", "--out", str(out_dir), "--quiet")
    assert code == 0 and "plan: all 8 stages reused (nothing changed)" in out
    # One more --set on top of the stored config redoes only what reads it, and says why.
    code, out, _ = run_cli(capsys, "run", "--out", str(out_dir), "--quiet", "--set", "sample.num_models=3")
    assert code == 0 and "sample run (sample.num_models: 6 -> 3)" in out
    assert run.manifest()["config"]["sample"]["num_models"] == 3
    assert run.manifest()["config"]["autoencoder"]["steps"] == MICRO_OVERRIDES["autoencoder.steps"]


def test_keyboard_interrupt_exits_130_with_a_resume_hint(capsys, monkeypatch, tmp_path):
    import pdiff.cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pdiff.cli, "run_pipeline", interrupted)
    code, _, err = run_cli(capsys, "run", "--out", str(tmp_path / "x"), "--quiet")
    assert code == 130 and "resume" in err and "Traceback" not in err


def test_paper_preset_builds_paper_sized_networks_and_runs_on_cpu(capsys, tmp_path):
    """The paper preset with its step counts turned down to a handful: the networks keep the paper's sizes."""
    out_dir = tmp_path / "paper"
    small = {"device": "cpu", "collect.num_checkpoints": 8, "classifier.epochs": 1,
             "autoencoder.steps": 2, "autoencoder.batch_size": 8, "diffusion.steps": 2, "diffusion.batch_size": 8,
             "diffusion.timesteps": 20, "sample.steps": 10, "sample.num_models": 4,
             "sample.trajectory_points": 3, "baselines.num_models": 4, "baselines.average_m": 4,
             "analysis.umap": False, "analysis.bootstrap": 10}
    code, _, err = run_cli(capsys, "run", "--preset", "paper", "--out", str(out_dir), "--quiet", *as_set_args(small))
    assert code == 0, err
    run = RunDir(out_dir)
    assert all(run.stage_done(s) for s in STAGE_NAMES)
    ae = run.load("autoencoder.safetensors")[0]
    encoder_out = [ae[f"model.encoder.{i}.0.weight"].shape[0] for i in range(5)]
    assert encoder_out == [64, 128, 256, 256, 32]
    assert ae["latent.mean"].shape == (128,)
    den = run.load("denoiser.safetensors")[0]
    assert [den[f"model.down.{i}.conv.weight"].shape[0] for i in range(4)] == [64, 128, 256, 512]
    assert den["model.time_mlp.0.weight"].shape == (128, 128)
    generated = run.load("generated.safetensors")[0]["params"]
    assert generated.shape == (4, 394) and torch.isfinite(generated).all()
