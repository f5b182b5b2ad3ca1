"""Ablation grids: every (setting, seed) becomes a run, finished work is reused exactly, and the
summary is the mean and spread over seeds."""
from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from pdiff import ablation
from pdiff.runs import RunDir
from pdiff.stages import load_zoo

TINY = {
    "classifier.epochs": 2,
    "collect.num_checkpoints": 8,
    "autoencoder.steps": 5,
    "diffusion.steps": 5,
    "diffusion.timesteps": 20,
    "sample.ddim_steps": 5,
    "sample.num_models": 4,
    "device": "cpu",
}
GRID = {"latent 0.1": {}, "latent 0": {"autoencoder.latent_noise": 0.0}, "ddpm": {"sample.sampler": "ddpm"}}


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    base = ablation.base_config(TINY, quick=True)
    lines: list[str] = []
    rows = ablation.run_grid(base, GRID, [0, 1], root, log=lines.append)
    return base, root, rows, lines


def test_one_row_per_setting_and_seed_with_metrics(grid):
    _, _, rows, lines = grid
    assert [(r["setting"], r["seed"]) for r in rows] == [(s, k) for s in GRID for k in (0, 1)]
    assert len(lines) == len(rows)
    for row in rows:
        assert 0.0 <= row["generated.median"] <= 100.0
        assert row["generated.min"] <= row["generated.median"] <= row["generated.best"]
        assert 0.0 <= row["generated.max_iou"] <= 1.0 and row["generated.nn_distance"] >= 0.0
        assert 0.0 <= row["generated.good"] <= 100.0
        assert row["collect.num_checkpoints"] == TINY["collect.num_checkpoints"]
        assert row["autoencoder.reconstruction_mse"] >= 0.0 and "diffusion.final_loss" in row
        assert row["time.total"] == pytest.approx(sum(v for k, v in row.items()
                                                      if k.startswith("time.") and k != "time.total"))
        assert RunDir(row["run"]).stage_done("evaluate") and not RunDir(row["run"]).stage_done("analyse")


def test_stages_a_setting_does_not_change_are_copied_from_a_sibling(grid):
    _, _, rows, _ = grid
    by = {(r["setting"], r["seed"]): RunDir(r["run"]) for r in rows}
    # Same seed, other latent noise: the zoo is shared, the autoencoder is not.
    run = by[("latent 0", 0)]
    assert run.stage("collect")["copied_from"] == str(by[("latent 0.1", 0)].path)
    assert "copied_from" not in run.stage("autoencoder")
    # Only the sampler differs: collect, autoencoder and diffusion are all shared.
    run = by[("ddpm", 1)]
    assert {run.stage(s).get("copied_from") for s in ("collect", "autoencoder", "diffusion")} == {
        str(by[("latent 0.1", 1)].path)}
    assert "copied_from" not in run.stage("sample")
    # Another seed never shares anything.
    assert "copied_from" not in by[("latent 0.1", 1)].stage("collect")
    assert not torch.equal(load_zoo(by[("latent 0.1", 0)])["params"], load_zoo(by[("latent 0.1", 1)])["params"])


def test_a_copied_stage_equals_a_recomputed_one(grid, tmp_path):
    base, _, rows, _ = grid
    copied = RunDir(next(r["run"] for r in rows if r["setting"] == "latent 0" and r["seed"] == 0))
    fresh = ablation.run_grid(base, {"latent 0": GRID["latent 0"]}, [0], tmp_path, log=None)[0]
    fresh_run = RunDir(fresh["run"])
    assert "copied_from" not in fresh_run.stage("collect")
    assert_close(load_zoo(fresh_run)["params"], load_zoo(copied)["params"], rtol=0, atol=0)
    row = next(r for r in rows if r["run"] == str(copied.path))
    assert fresh["generated.median"] == row["generated.median"]


def test_rerunning_a_grid_reuses_finished_runs(grid):
    base, root, rows, _ = grid
    before = {r["run"]: RunDir(r["run"]).stage("diffusion")["seconds"] for r in rows}
    lines: list[str] = []
    again = ablation.run_grid(base, GRID, [0, 1], root, log=lines.append)
    assert [r["run"] for r in again] == [r["run"] for r in rows]
    assert all(": reused;" in line for line in lines)
    assert {r["run"]: RunDir(r["run"]).stage("diffusion")["seconds"] for r in again} == before
    assert [r["generated.median"] for r in again] == [r["generated.median"] for r in rows]


def test_a_one_checkpoint_zoo_runs_and_has_no_zoo_neighbour(tmp_path):
    base = ablation.base_config(TINY, quick=True)
    row = ablation.run_grid(base, {"K=1": {"collect.num_checkpoints": 1}}, [0], tmp_path, log=None)[0]
    assert math.isnan(row["zoo.max_iou"]) and math.isnan(row["zoo.nn_distance"])
    assert 0.0 <= row["generated.max_iou"] <= 1.0


def test_resample_counts_network_calls_and_evaluates(grid):
    _, _, rows, _ = grid
    run = RunDir(rows[0]["run"])
    ddim = ablation.resample(run, "ddim", 4, num_models=3, seed=5)
    assert ddim["steps"] == 4 and ddim["seconds"] > 0
    assert 0.0 <= ddim["generated.min"] <= ddim["generated.best"] <= 100.0
    ddpm = ablation.resample(run, "ddpm", 0, num_models=3, seed=5)
    assert ddpm["steps"] == TINY["diffusion.timesteps"]
    again = ablation.resample(run, "ddim", 4, num_models=3, seed=5)  # same seed, same models
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in ddim.items() if k != "seconds"}


def test_similarity_to_zoo_of_copies_is_one_and_zero():
    labels = torch.tensor([0, 1, 2, 3])
    zoo_pred = torch.tensor([[0, 1, 0, 0], [0, 0, 2, 3], [1, 1, 2, 3]])
    zoo_params = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    out = ablation.similarity_to_zoo(zoo_pred[[1, 1]], zoo_params[[1, 1]], zoo_pred, zoo_params, labels)
    assert out == {"max_iou": 1.0, "nn_distance": 0.0, "iou_within": 1.0}
    # Within the zoo a model is not its own neighbour: wrong sets {2,3}, {1}, {0} share nothing.
    out = ablation.similarity_to_zoo(zoo_pred, zoo_params, zoo_pred, zoo_params, labels, self_compare=True)
    assert out["max_iou"] == 0.0 and out["iou_within"] == 0.0
    expected = torch.cdist(zoo_params, zoo_params).fill_diagonal_(float("inf")).min(1).values.median()
    assert out["nn_distance"] == pytest.approx(expected.item(), rel=1e-5)


def test_summarize_gives_mean_and_sample_std_per_setting():
    rows = [{"setting": "a", "seed": 0, "acc": 1.0, "iou": float("nan"), "run": "x"},
            {"setting": "a", "seed": 1, "acc": 3.0, "iou": 0.5, "run": "y"},
            {"setting": "b", "seed": 0, "acc": 5.0, "iou": 0.2, "run": "z"}]
    summary = ablation.summarize(rows)
    assert [s["setting"] for s in summary] == ["a", "b"] and [s["n"] for s in summary] == [2, 1]
    assert summary[0]["acc"] == 2.0 and summary[0]["acc_std"] == pytest.approx(math.sqrt(2.0))
    assert summary[0]["iou"] == 0.5 and math.isnan(summary[0]["iou_std"])  # NaN left out
    assert math.isnan(summary[1]["acc_std"])  # one seed: no spread
    assert "run" not in summary[0] and "seed" not in summary[0]
    table = ablation.format_table(summary, {"setting": "setting", "n": "n", "acc": "accuracy"})
    assert "2.00 ± 1.41" in table and "5.00" in table and "5.00 ±" not in table
    assert ablation.column(summary, "acc") == [2.0, 5.0]
    precise = ablation.format_table(summary, {"setting": "setting", "acc": ("accuracy", 0), "iou": ("IoU", 3)})
    assert "2 ± 1" in precise and "0.500" in precise


def test_quick_mode_reads_the_environment(monkeypatch):
    monkeypatch.setenv(ablation.QUICK_ENV, "1")
    assert ablation.quick_mode() and ablation.seeds(full=3, quick=1) == [0]
    assert ablation.base_config().diffusion.steps == ablation.QUICK_OVERRIDES["diffusion.steps"]
    monkeypatch.setenv(ablation.QUICK_ENV, "0")
    assert not ablation.quick_mode() and ablation.seeds(full=3) == [0, 1, 2]
    assert ablation.base_config({"seed": 4}).seed == 4
    assert ablation.base_config().diffusion.steps == ablation.FULL_OVERRIDES["diffusion.steps"]


def test_until_before_evaluate_is_refused(tmp_path):
    with pytest.raises(ValueError, match="until"):
        ablation.run_grid(ablation.base_config(TINY, quick=True), {"a": {}}, [0], tmp_path, until="sample")
