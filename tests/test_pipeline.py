"""End to end: the tiny run learns, runs are reproducible, resume and --force reuse what is done,
artifacts round-trip exactly, and damaged or mismatched run directories give clear errors."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import copy_run, micro_config, tiny_config

from pdiff.core.errors import RunError
from pdiff.core.rundir import RunDir
from pdiff.pipeline.loaders import load_generator, load_task, model_groups
from pdiff.pipeline.runner import reset_from, run_pipeline
from pdiff.pipeline.table import STAGE_NAMES

ARTIFACTS = ["base.safetensors", "zoo.safetensors", "autoencoder.safetensors", "denoiser.safetensors",
             "generated.safetensors", "baselines.safetensors", "evaluation.safetensors", "analysis.safetensors",
             "dynamics.safetensors"]
UPSTREAM = ["base.safetensors", "zoo.safetensors", "autoencoder.safetensors"]  # collect + autoencoder


def mtimes(run: RunDir, names: list[str]) -> dict[str, int]:
    return {name: run.file(name).stat().st_mtime_ns for name in names}


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory) -> RunDir:
    """A finished seconds-long run: the uninterrupted reference for determinism and resume."""
    return run_pipeline(tmp_path_factory.mktemp("micro") / "reference", micro_config())


# --------------------------------------------------------------------------- the tiny run


def test_tiny_run_generates_models_far_above_chance(tiny_run):
    stages = tiny_run.manifest()["stages"]
    assert [stages[s]["status"] for s in STAGE_NAMES] == ["done"] * len(STAGE_NAMES)
    evaluation = tiny_run.load("evaluation.safetensors")[0]
    zoo_acc, gen_acc = evaluation["zoo.accuracy"], evaluation["generated.accuracy"]
    assert zoo_acc.shape == (40,) and gen_acc.shape == (20,)
    # digits has 10 classes: chance is 10%. The zoo is a trained classifier's neighbourhood.
    assert zoo_acc.median() > 80
    assert gen_acc.median() > 80, gen_acc
    assert stages["evaluate"]["metrics"]["generated_median"] == pytest.approx(gen_acc.median().item())
    generated = tiny_run.load("generated.safetensors")[0]
    assert generated["params"].shape == (20, 394) and torch.isfinite(generated["params"]).all()
    # generated models are not copies of one checkpoint: they differ from each other
    assert torch.cdist(generated["params"], generated["params"]).max() > 0


def test_tiny_run_manifest_records_config_versions_and_metrics(tiny_run):
    manifest = tiny_run.manifest()
    assert manifest["config"]["autoencoder"]["steps"] == 200 and manifest["seed"] == 0
    assert {"python", "torch", "numpy", "safetensors"} <= set(manifest["versions"])
    assert manifest["device"] == "cpu"
    for stage in STAGE_NAMES:
        record = manifest["stages"][stage]
        assert record["seconds"] == pytest.approx(record["ended"] - record["started"], abs=2e-3) and "metrics" in record
    assert manifest["stages"]["collect"]["metrics"]["dim"] == 394
    assert not list(tiny_run.path.glob(".*.tmp"))  # atomic writes leave no temp files


def test_tiny_run_loaders_rebuild_the_objects(tiny_run):
    config = tiny_config()
    task = load_task(tiny_run, config, torch.device("cpu"))
    assert task.layout.dim == 394 and task.layout.names[-1] == "head.bias"
    generator = load_generator(tiny_run, config, torch.device("cpu"))
    zoo = model_groups(tiny_run)["zoo"]
    # the stored generator round-trips the zoo through its latent space closely
    recon = generator.decode(generator.encode(zoo)).float()
    assert (recon - zoo).pow(2).mean() < zoo.var(0).mean()
    groups = model_groups(tiny_run)
    assert list(groups)[:3] == ["zoo", "fresh", "generated"] and "gaussian" in groups and "copies" in groups


def test_latent_bounds_missing_from_an_older_autoencoder_file_are_refit(tiny_run, tmp_path):
    """Autoencoders saved before x0-clipping have no latent bounds; loading refits them, so
    clip_x0 is not silently off for a run (or a notebook grid) that reuses such a file."""
    run = copy_run(tiny_run, tmp_path / "old")
    state, meta = run.load("autoencoder.safetensors")
    run.save("autoencoder.safetensors", {k: v for k, v in state.items() if k not in ("latent.low", "latent.high")}, meta)
    stats = load_generator(run, tiny_config(), torch.device("cpu")).stats
    torch.testing.assert_close(stats.low, state["latent.low"])
    torch.testing.assert_close(stats.high, state["latent.high"])


def test_every_artifact_round_trips_exactly(tiny_run, tmp_path):
    copy = RunDir(tmp_path / "copy")
    for name in ARTIFACTS:
        tensors, meta = tiny_run.load(name)
        copy.save(name, tensors, meta)
        again, meta_again = copy.load(name)
        assert meta_again == meta and again.keys() == tensors.keys(), name
        for key, value in tensors.items():
            assert again[key].dtype == value.dtype, (name, key)
            assert torch.equal(again[key], value), (name, key)


def test_save_load_all_dtypes_and_non_contiguous(tmp_path):
    run = RunDir(tmp_path)
    tensors = {"f32": torch.randn(3, 4), "f64": torch.randn(2, dtype=torch.float64), "i16": torch.arange(5, dtype=torch.int16),
               "i64": torch.arange(3), "u8": torch.tensor([0, 1, 255], dtype=torch.uint8),
               "b": torch.tensor([True, False]), "t": torch.randn(4, 3).T, "empty": torch.zeros(0, 7)}
    run.save("x.safetensors", tensors, {"layout": [{"name": "a", "shape": [2]}], "note": "é"})
    back, meta = run.load("x.safetensors")
    assert meta == {"layout": [{"name": "a", "shape": [2]}], "note": "é"}
    for key, value in tensors.items():
        assert back[key].dtype == value.dtype and torch.equal(back[key], value), key


# --------------------------------------------------------------------------- determinism, resume, force


def test_same_config_and_seed_give_identical_generated_tensors(micro_run, tmp_path):
    again = run_pipeline(tmp_path / "again", micro_config(), until="sample")
    a, b = micro_run.load("generated.safetensors")[0], again.load("generated.safetensors")[0]
    for key in ("params", "latents", "trajectory", "trajectory_steps"):
        assert torch.equal(a[key], b[key]), key
    assert torch.equal(micro_run.load("zoo.safetensors")[0]["params"], again.load("zoo.safetensors")[0]["params"])
    assert again.stage("baselines")["status"] == "pending"  # `until` stopped after sample
    other_seed = run_pipeline(tmp_path / "seed1", micro_config(seed=1), until="sample")
    assert not torch.equal(other_seed.load("generated.safetensors")[0]["params"], a["params"])


def test_interrupted_run_resumes_and_matches_an_uninterrupted_one(micro_run, tmp_path):
    path = tmp_path / "interrupted"

    def interrupt_in_diffusion(stage, done, total, info):
        if stage == "diffusion" and done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_pipeline(path, micro_config(), report=interrupt_in_diffusion)
    run = RunDir(path)
    stages = run.manifest()["stages"]
    assert stages["collect"]["status"] == "done" and stages["autoencoder"]["status"] == "done"
    assert stages["diffusion"]["status"] == "interrupted" and "KeyboardInterrupt" in stages["diffusion"]["error"]
    assert all(stages[s]["status"] == "pending" for s in STAGE_NAMES[3:])
    assert not run.file("denoiser.safetensors").exists()
    before = mtimes(run, UPSTREAM)

    seen: list[str] = []
    run_pipeline(path, micro_config(), report=lambda stage, *_: seen.append(stage))
    assert all(run.stage_done(s) for s in STAGE_NAMES)
    assert mtimes(run, UPSTREAM) == before  # finished stages were reused, not recomputed
    assert "collect" not in seen and "autoencoder" not in seen and "diffusion" in seen
    resumed, reference = run.load("generated.safetensors")[0], micro_run.load("generated.safetensors")[0]
    assert torch.equal(resumed["params"], reference["params"])
    assert torch.equal(run.load("evaluation.safetensors")[0]["generated.predictions"],
                       micro_run.load("evaluation.safetensors")[0]["generated.predictions"])


def test_finished_run_is_not_recomputed_and_force_redoes_a_stage_and_later(micro_run, tmp_path):
    run = copy_run(micro_run, tmp_path / "forced")
    everything = mtimes(run, ARTIFACTS)
    seen: list[str] = []
    run_pipeline(run.path, micro_config(), report=lambda stage, *_: seen.append(stage))
    assert seen == [] and mtimes(run, ARTIFACTS) == everything

    run_pipeline(run.path, micro_config(), force="sample", report=lambda stage, *_: seen.append(stage))
    after = mtimes(run, ARTIFACTS)
    kept = ["base.safetensors", "zoo.safetensors", "autoencoder.safetensors", "denoiser.safetensors"]
    assert {n: after[n] for n in kept} == {n: everything[n] for n in kept}
    for name in ("generated.safetensors", "baselines.safetensors", "evaluation.safetensors", "analysis.safetensors"):
        assert after[name] != everything[name], name
    assert set(seen) >= {"sample", "evaluate", "analyse"} and "diffusion" not in seen
    assert all(run.stage_done(s) for s in STAGE_NAMES)
    # redone with the same seed: the same models
    assert torch.equal(run.load("generated.safetensors")[0]["params"],
                       micro_run.load("generated.safetensors")[0]["params"])


def test_reset_from_marks_the_stage_and_later_pending(micro_run, tmp_path):
    run = copy_run(micro_run, tmp_path / "reset")
    reset_from(run, "evaluate")
    assert [run.stage_done(s) for s in STAGE_NAMES] == [True] * 5 + [False] * 3
    with pytest.raises(RunError, match=r"unknown stage 'train'; stages are: collect, autoencoder"):
        reset_from(run, "train")


# --------------------------------------------------------------------------- clear errors


def test_changing_one_sample_key_recomputes_exactly_the_stages_that_read_it(micro_run, tmp_path):
    """sample, evaluate and analyse read what sampling writes, and dynamics samples the snapshots
    with the run's sampler; collect, autoencoder, diffusion and baselines (zoo and autoencoder
    only) do not, so they are reused untouched."""
    run = copy_run(micro_run, tmp_path / "ddim")
    before = mtimes(run, ARTIFACTS)
    fingerprints = {s: run.stage(s)["fingerprint"] for s in STAGE_NAMES}
    lines: list[str] = []
    seen: list[str] = []
    run_pipeline(run.path, micro_config(**{"sample.sampler": "ddim"}), log=lines.append,
                 report=lambda stage, *_: seen.append(stage))
    after = mtimes(run, ARTIFACTS)
    redone = {"generated.safetensors", "evaluation.safetensors", "analysis.safetensors", "dynamics.safetensors"}
    assert {n for n in ARTIFACTS if after[n] != before[n]} == redone
    assert set(seen) == {"sample", "evaluate", "analyse", "dynamics"}
    changed = {s for s in STAGE_NAMES if run.stage(s)["fingerprint"] != fingerprints[s]}
    assert changed == {"sample", "evaluate", "analyse", "dynamics"}
    assert lines == [("plan: collect, autoencoder, diffusion reused; sample run (sample.sampler: 'ddpm' -> 'ddim'); "
                      "baselines reused; evaluate run (its input sample changed); analyse run (its input sample, "
                      "evaluate changed); dynamics run (sample.sampler: 'ddpm' -> 'ddim')")]
    assert run.manifest()["config"]["sample"]["sampler"] == "ddim"
    assert not torch.equal(run.load("generated.safetensors")[0]["params"],
                           micro_run.load("generated.safetensors")[0]["params"])


def test_runs_in_one_folder_share_stages_through_the_store(tmp_path):
    """A second run whose early stages have the same fingerprints links them from the store
    (the same files, not copies) instead of recomputing, and records where they came from."""
    first = run_pipeline(tmp_path / "a", micro_config(), until="sample")
    lines: list[str] = []
    second = run_pipeline(tmp_path / "b", micro_config(**{"sample.num_models": 3}), until="sample", log=lines.append)
    assert lines[0].startswith("plan: collect, autoencoder, diffusion from the store; sample run")
    for stage, name in (("collect", "zoo.safetensors"), ("autoencoder", "autoencoder.safetensors"),
                        ("diffusion", "denoiser.safetensors")):
        assert second.stage(stage)["reused"] == "store"
        assert second.stage(stage)["fingerprint"] == first.stage(stage)["fingerprint"]
        assert second.stage(stage)["seconds"] == first.stage(stage)["seconds"]  # the time it cost to compute
        assert second.file(name).stat().st_ino == first.file(name).stat().st_ino  # a hard link
    assert "reused" not in first.stage("collect") or first.stage("collect")["reused"] is None
    assert second.load("generated.safetensors")[0]["params"].shape[0] == 3
    fresh = run_pipeline(tmp_path / "c" / "fresh", micro_config(**{"sample.num_models": 3}), until="sample")
    assert fresh.stage("collect").get("reused") is None  # another folder, another store: computed
    assert torch.equal(fresh.load("generated.safetensors")[0]["params"], second.load("generated.safetensors")[0]["params"])


def test_a_dataset_re_registered_under_the_same_name_redoes_collect(tmp_path):
    from pdiff.core.registry import DATASETS
    from pdiff.zoo.datasets import register_tensors

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 1, 8, 8, generator=g), torch.arange(96) % 3
    config = micro_config(**{"data.name": "byo-test", "classifier.arch": "mlp", "baselines.enabled": False})
    try:
        register_tensors("byo-test", x[:64], y[:64], x[64:], y[64:])
        run = run_pipeline(tmp_path / "byo", config, until="collect")
        lines: list[str] = []
        run_pipeline(run.path, config, until="collect", log=lines.append)
        assert lines == ["plan: collect reused (nothing changed)"]
        register_tensors("byo-test", x[:64] + 1, y[:64], x[64:], y[64:])  # same name, other tensors
        run_pipeline(run.path, config, until="collect", log=lines.append)
        assert lines[-1] == "plan: collect run (the dataset's content changed)"
    finally:
        DATASETS.pop("byo-test", None)


def test_a_run_folder_is_never_made_inside_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(RunError, match="exists and is not a pdiff run"):
        run_pipeline(tmp_path / "mine", micro_config())
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_truncated_or_missing_artifact_is_a_one_line_run_error(micro_run, tmp_path):
    run = copy_run(micro_run, tmp_path / "damaged")
    zoo = run.file("zoo.safetensors")
    zoo.write_bytes(zoo.read_bytes()[: zoo.stat().st_size // 2])
    with pytest.raises(RunError, match="damaged") as info:
        run.load("zoo.safetensors")
    assert "\n" not in str(info.value) and "zoo.safetensors" in str(info.value)
    zoo.write_bytes(b"")
    with pytest.raises(RunError, match="damaged"):
        run.load("zoo.safetensors")
    run.file("denoiser.safetensors").unlink()
    with pytest.raises(RunError, match="denoiser.safetensors is missing") as info:
        load_generator(run, micro_config(), torch.device("cpu"))
    assert "\n" not in str(info.value)
    run.file("run.json").write_text("{not json")
    with pytest.raises(RunError, match="damaged"):
        run.manifest()


def test_progress_file_tracks_the_last_stage(micro_run):
    progress = micro_run.progress()
    assert progress is not None and progress["stage"] == "dynamics" and progress["done"] == progress["total"]
    assert json.loads(micro_run.file("progress.json").read_text())["stage"] == "dynamics"


def test_progress_keeps_each_phases_losses_for_live_curves(tmp_path):
    from pdiff.core.rundir import RunDir
    from pdiff.pipeline.runner import ThrottledProgress

    run = RunDir(tmp_path)
    progress = ThrottledProgress(run, interval=0.0, max_points=8)
    for step in range(1, 4):
        progress("collect", step, 3, {"phase": "classifier 1/1", "loss": 1.0 / step})
    for step in range(1, 21):
        progress("autoencoder", step, 20, {"loss": 0.5})
    progress("evaluate", 1, 2, {"group": "zoo"})  # no loss: no curve
    history = json.loads(run.file("progress.json").read_text())["history"]
    assert list(history) == ["autoencoder", "collect: classifier 1/1"]  # JSON keys sorted; "started" orders them
    assert [p[2] for p in history["collect: classifier 1/1"]["points"]] == [1.0, 0.5, 1.0 / 3]
    assert history["collect: classifier 1/1"]["started"] <= history["autoencoder"]["started"]
    curve = history["autoencoder"]
    assert len(curve["points"]) <= 8 and curve["every"] > 1  # thinned: every other point, twice over
    assert [p[0] for p in curve["points"]] == list(range(1, 21, curve["every"]))
