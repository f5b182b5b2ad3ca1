"""Ablation grids: every (setting, seed) becomes a run, finished work is reused exactly, and the
summary is the mean and spread over seeds."""
from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from pdiff import ablation, preset
from pdiff.core.rundir import RunDir
from pdiff.core.runtime import make_generator
from pdiff.judge import metrics
from pdiff.judge.evaluate import BatchedEvaluator
from pdiff.pipeline.loaders import load_evaluation, load_generator, load_task, load_zoo
from pdiff.pipeline.report import metrics_table
from pdiff.pipeline.runner import load_run_config

TINY = {
    "classifier.epochs": 2,
    "collect.num_checkpoints": 8,
    "autoencoder.steps": 5,
    "diffusion.steps": 5,
    "diffusion.timesteps": 20,
    "sample.steps": 5,
    "sample.num_models": 4,
    "device": "cpu",
}
GRID = {"latent 0.1": {}, "latent 0": {"autoencoder.latent_noise": 0.0}, "ddim": {"sample.sampler": "ddim"}}


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    base = ablation.base_config(TINY, quick=True)
    lines: list[str] = []
    rows = ablation.run_grid(base, GRID, [0, 1], root, log=lines.append)
    return base, root, rows, lines


def test_one_row_per_setting_and_seed_read_from_the_metrics_table(grid):
    _, _, rows, lines = grid
    assert [(r["setting"], r["seed"]) for r in rows] == [(s, k) for s in GRID for k in (0, 1)]
    assert len(lines) == len(rows)
    for row in rows:
        run = RunDir(row["run"])
        table = metrics_table(run)
        assert table.complete  # grids run through the analysis: one table for every reader
        for group in ("zoo", "generated"):
            card = table.rows[group]
            assert row[f"{group}.median"] == card["median"] and row[f"{group}.good"] == card["good"]
            assert row[f"{group}.iou_within"] == card["iou_within"]
            assert row[f"{group}.distinct_predictions"] == card["distinct_predictions"]
        assert row["generated.max_iou"] == table.rows["generated"]["max_iou_median"]
        assert row["generated.nn_distance"] == table.rows["generated"]["nn_distance_median"]
        accuracy = load_evaluation(run).accuracy["generated"]
        assert row["generated.median"] == metrics.accuracy_summary(accuracy)["median"]
        assert row["collect.num_checkpoints"] == TINY["collect.num_checkpoints"]
        assert row["autoencoder.reconstruction_mse"] == run.stage("autoencoder")["metrics"]["reconstruction_mse"]
        assert row["time.total"] == pytest.approx(sum(v for k, v in row.items()
                                                      if k.startswith("time.") and k != "time.total"))


def test_stages_a_setting_does_not_change_come_from_the_store(grid):
    """The grid reuses stages through the pipeline's fingerprints: a stage whose inputs a
    setting does not change is linked from the grid's store, never copied with a forged entry."""
    _, _, rows, lines = grid
    by = {(r["setting"], r["seed"]): RunDir(r["run"]) for r in rows}
    # Same seed, other latent noise: the zoo is shared, the autoencoder is not.
    run, sibling = by[("latent 0", 0)], by[("latent 0.1", 0)]
    assert run.stage("collect")["reused"] == "store"
    assert run.file("zoo.safetensors").stat().st_ino == sibling.file("zoo.safetensors").stat().st_ino
    assert run.stage("autoencoder").get("reused") is None
    # Only the sampler differs: collect, autoencoder and diffusion are all shared.
    run, sibling = by[("ddim", 1)], by[("latent 0.1", 1)]
    for stage in ("collect", "autoencoder", "diffusion"):
        assert run.stage(stage)["reused"] == "store"
        assert run.stage(stage)["fingerprint"] == sibling.stage(stage)["fingerprint"]
    assert run.stage("sample").get("reused") is None
    # Another seed never shares anything.
    assert by[("latent 0.1", 1)].stage("collect").get("reused") is None
    assert not torch.equal(load_zoo(by[("latent 0.1", 0)])["params"], load_zoo(by[("latent 0.1", 1)])["params"])
    assert "collect, autoencoder, diffusion from the store" in lines[4]  # ddim, seed 0


def test_a_stored_stage_equals_a_recomputed_one(grid, tmp_path):
    base, _, rows, _ = grid
    linked = RunDir(next(r["run"] for r in rows if r["setting"] == "latent 0" and r["seed"] == 0))
    fresh = ablation.run_grid(base, {"latent 0": GRID["latent 0"]}, [0], tmp_path, log=None)[0]
    fresh_run = RunDir(fresh["run"])
    assert fresh_run.stage("collect").get("reused") is None
    assert_close(load_zoo(fresh_run)["params"], load_zoo(linked)["params"], rtol=0, atol=0)
    row = next(r for r in rows if r["run"] == str(linked.path))
    assert fresh["generated.median"] == row["generated.median"]


def test_rerunning_a_grid_reuses_finished_runs(grid):
    base, root, rows, _ = grid
    before = {r["run"]: RunDir(r["run"]).stage("diffusion")["seconds"] for r in rows}
    lines: list[str] = []
    again = ablation.run_grid(base, GRID, [0, 1], root, log=lines.append)
    assert [r["run"] for r in again] == [r["run"] for r in rows]
    assert all("all 8 stages reused (nothing changed)" in line for line in lines)
    assert {r["run"]: RunDir(r["run"]).stage("diffusion")["seconds"] for r in again} == before
    assert [r["generated.median"] for r in again] == [r["generated.median"] for r in rows]


def test_a_one_checkpoint_zoo_runs_and_has_no_zoo_neighbour(tmp_path):
    base = ablation.base_config(TINY, quick=True)
    row = ablation.run_grid(base, {"K=1": {"collect.num_checkpoints": 1}}, [0], tmp_path, log=None)[0]
    assert math.isnan(row["zoo.max_iou"]) and math.isnan(row["zoo.nn_distance"]) and math.isnan(row["zoo.iou_within"])
    table = metrics_table(RunDir(row["run"])).rows["generated"]
    assert row["generated.max_iou"] == table["max_iou_median"]


def test_resample_counts_network_calls_and_evaluates(grid):
    _, _, rows, _ = grid
    run = RunDir(rows[0]["run"])
    ddim = ablation.resample(run, "ddim", 4, num_models=3, seed=5)
    assert ddim["steps"] == 4 and ddim["seconds"] > 0
    again = ablation.resample(run, "ddim", 4, num_models=3, seed=5)  # same seed, same models
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in ddim.items() if k != "seconds"}
    ddpm = ablation.resample(run, "ddpm", 0, num_models=3, seed=5)
    assert ddpm["steps"] == TINY["diffusion.timesteps"]
    # the accuracies are those of the sampled models, evaluated like the pipeline does
    config = load_run_config(run)
    samples = load_generator(run, config, torch.device("cpu")).sample(3, make_generator(5), "ddim", 4)
    task = load_task(run, config, torch.device("cpu"))
    accuracy = BatchedEvaluator(task.model, task.layout, task.dataset.x_test, task.dataset.y_test).evaluate(
        samples.params).accuracy
    assert ddim["generated.median"] == metrics.accuracy_summary(accuracy)["median"]
    assert ddim["generated.best"] == accuracy.max().item()


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
    assert ablation.base_config().analysis.bootstrap == ablation.FULL_OVERRIDES["analysis.bootstrap"]
    assert ablation.base_config().diffusion.steps == preset("digits").diffusion.steps  # the preset's own generator
    quick = ablation.base_config(quick=True, preset_name="mnist1d")
    assert quick.classifier.epochs == preset("mnist1d").classifier.epochs == 3  # quick never makes a preset bigger
    assert ablation.base_config(quick=True).classifier.epochs == ablation.QUICK_OVERRIDES["classifier.epochs"]
    assert quick.sample.steps == ablation.QUICK_OVERRIDES["sample.steps"]  # a 0 ("the default") is not "smaller"
