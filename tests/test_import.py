"""Bring your own zoo: checkpoints trained elsewhere are imported (both file formats), checked
against the classifier, measured exactly, reused while unchanged and redone when a file changes;
foreign architectures and pickled objects are refused in one line, without running anything; a
zoo explored alone (no generator) and a zoo of several runs with a generator both finish."""
from __future__ import annotations

import json
import pickle
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from pdiff import cli
from pdiff.core.config import DataConfig, with_overrides
from pdiff.core.errors import RunError
from pdiff.core.presets import preset
from pdiff.core.rundir import RunDir
from pdiff.judge.analysis import nearest_in_frames
from pdiff.judge.verdict import verdict
from pdiff.pipeline.loaders import load_zoo
from pdiff.pipeline.report import metrics_table
from pdiff.pipeline.runner import run_pipeline
from pdiff.zoo.checkpoints import find_checkpoints, load_state
from pdiff.zoo.classifiers import build_classifier, mlp, small_cnn
from pdiff.zoo.datasets import Dataset, load_dataset
from pdiff.zoo.metadata import Checkpoint, describe, split_fresh

SEEDS, SAVES = 5, (60, 120)  # five independent runs, each saved twice: ten checkpoints
GENERATOR = {"autoencoder.steps": 30, "diffusion.steps": 30, "diffusion.timesteps": 50, "sample.num_models": 8,
             "sample.steps": 10, "sample.trajectory_points": 4, "baselines.num_models": 6, "baselines.average_m": 4}


def zoo_config(folder: Path, **extra):
    return with_overrides(preset("digits"), {"device": "cpu", "zoo.dir": str(folder), "classifier.arch": "mlp",
                                             "analysis.umap": False, "analysis.bootstrap": 50} | extra)


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset(DataConfig())


def train(factory, data: Dataset, seed: int, saves: tuple[int, ...]) -> list[dict[str, torch.Tensor]]:
    """Plain PyTorch: a network trained from its own seed, its state dict at each of `saves` steps."""
    torch.manual_seed(seed)
    model = factory(data.input_shape, data.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    order = torch.Generator().manual_seed(seed)
    states = []
    for step in range(1, max(saves) + 1):
        idx = torch.randint(len(data.y_train), (64,), generator=order)
        loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step in saves:
            states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    return states


def write_zoo(folder: Path, data: Dataset, factory=mlp, seeds: int = SEEDS, saves: tuple[int, ...] = SAVES,
              metadata: bool = True) -> Path:
    """Seeds with even numbers as .safetensors, odd ones as .pt; a zoo.json naming each run."""
    folder.mkdir(parents=True)
    rows = []
    for seed in range(seeds):
        for step, state in zip(saves, train(factory, data, seed, saves)):
            name = f"seed{seed}_step{step}" + (".pt" if seed % 2 else ".safetensors")
            torch.save(state, folder / name) if seed % 2 else save_file(state, folder / name)
            rows.append({"file": name, "run": f"seed{seed}", "step": step, "optimizer": "sgd"})
    if metadata:
        (folder / "zoo.json").write_text(json.dumps(rows))
    return folder


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory, digits) -> Path:
    return write_zoo(tmp_path_factory.mktemp("zoo") / "mlps", digits)


@pytest.fixture(scope="module")
def explored(tmp_path_factory, zoo_dir) -> RunDir:
    """The zoo explored alone: import, evaluate, analyse."""
    return run_pipeline(tmp_path_factory.mktemp("runs") / "explored", zoo_config(zoo_dir, generate=False))


@torch.no_grad()
def plain_accuracy(factory, state: dict[str, torch.Tensor], data: Dataset) -> float:
    model = factory(data.input_shape, data.num_classes)
    model.load_state_dict(state)
    return (model.eval()(data.x_test).argmax(1) == data.y_test).float().mean().item() * 100


# --------------------------------------------------------------------------- importing


def test_a_zoo_explored_alone_runs_import_evaluate_analyse(explored, zoo_dir, digits):
    stages = explored.manifest()["stages"]
    assert set(stages) == {"import", "evaluate", "analyse"} and all(s["status"] == "done" for s in stages.values())
    zoo, meta = load_zoo(explored), explored.load("zoo.safetensors")[1]
    # the last fifth of the five runs (one run, both its checkpoints) is the fresh-training reference
    assert meta["fresh_runs"] == ["seed4"] and zoo["params"].shape[0] == 8 and zoo["fresh.params"].shape[0] == 2
    assert [c["run"] for c in meta["checkpoints"]] == [f"seed{s}" for s in range(4) for _ in SAVES]
    assert meta["checkpoints"][1] == {"file": "seed0_step120.safetensors", "run": "seed0", "step": 120,
                                      "optimizer": "sgd"}
    table = metrics_table(explored)
    assert set(table.rows) == {"zoo", "fresh"} and table.complete
    assert table.rows["zoo"]["distances"] == "aligned" and table.alignment["aligned"]
    assert table.runs["chance_same_run"] == pytest.approx(4 * 2 / (8 * 7))
    assert table.verdict().headline.startswith("Nothing to judge: this run has no generator")


def test_each_checkpoint_is_measured_exactly_as_its_own_network(explored, zoo_dir, digits):
    """The whole state dict is the target, BatchNorm statistics included: the batched evaluation of
    each imported (and neuron-aligned) vector equals a plain forward pass of the file's network."""
    zoo, meta = load_zoo(explored), explored.load("zoo.safetensors")[1]
    for i, record in enumerate(meta["checkpoints"]):
        state = load_state(zoo_dir / record["file"], record["file"])
        assert zoo["accuracy"][i].item() == pytest.approx(plain_accuracy(mlp, state, digits), abs=1e-4)
    assert "bn1.running_var" in meta["target"] and "bn1.num_batches_tracked" not in meta["target"]


def test_a_cnn_with_batchnorm_is_measured_exactly(tmp_path, digits):
    folder = write_zoo(tmp_path / "cnns", digits, small_cnn, seeds=2, saves=(20,), metadata=False)
    run = run_pipeline(tmp_path / "run", zoo_config(folder, generate=False, **{"classifier.arch": "cnn"}))
    zoo, meta = load_zoo(run), run.load("zoo.safetensors")[1]
    for i, record in enumerate(meta["checkpoints"]):
        state = load_state(folder / record["file"], record["file"])
        assert zoo["accuracy"][i].item() == pytest.approx(plain_accuracy(small_cnn, state, digits), abs=1e-4)
    # no metadata: the runs are unknown, so nothing stands for fresh training and the files are aligned
    assert meta["fresh_runs"] == [] and "does not say which run" in meta["fresh_note"]
    assert meta["alignment"]["aligned"]


def test_alignment_at_import_keeps_every_function_and_shortens_distances(tmp_path, zoo_dir):
    runs = {mode: run_pipeline(tmp_path / mode, zoo_config(zoo_dir, generate=False, **{"zoo.align": mode,
                                                                                        "analysis.align": mode}))
            for mode in ("on", "off")}
    zoos = {mode: load_zoo(run) for mode, run in runs.items()}
    torch.testing.assert_close(zoos["on"]["accuracy"], zoos["off"]["accuracy"])  # permuted, same functions
    on, off = zoos["on"]["params"], zoos["off"]["params"]
    assert not torch.equal(on, off) and torch.equal(on[0], off[0])  # the reference keeps its order
    assert (on - on[0]).norm(dim=1)[2:].mean() < 0.9 * (off - off[0]).norm(dim=1)[2:].mean()  # other runs come closer
    rows = {mode: metrics_table(run).rows["zoo"] for mode, run in runs.items()}
    assert rows["on"]["distances"] == "aligned" and rows["off"]["distances"] == "raw"


def test_a_zoo_of_several_runs_feeds_a_generator_and_the_run_finishes(tmp_path, zoo_dir):
    run = run_pipeline(tmp_path / "generated", zoo_config(zoo_dir, **GENERATOR))
    stages = run.manifest()["stages"]
    assert "collect" not in stages and len(stages) == 8 and all(s["status"] == "done" for s in stages.values())
    table = metrics_table(run)
    assert {"zoo", "fresh", "generated", "copies"} <= set(table.rows)
    assert table.ruler is not None and table.verdict().answer != "unknown"


def test_the_plan_reuses_an_unchanged_import_and_redoes_it_when_a_file_changes(tmp_path, zoo_dir):
    folder = tmp_path / "zoo"
    folder.mkdir()
    for path in zoo_dir.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    config = zoo_config(folder, generate=False)
    lines: list[str] = []
    run_pipeline(tmp_path / "run", config, log=lines.append)
    run_pipeline(tmp_path / "run", config, log=lines.append)
    assert lines[-1] == "plan: all 3 stages reused (nothing changed)"
    state = load_state(folder / "seed1_step60.pt", "seed1_step60.pt")
    state["head.bias"] += 1.0
    torch.save(state, folder / "seed1_step60.pt")
    run = run_pipeline(tmp_path / "run", config, log=lines.append)
    assert lines[-1].startswith("plan: import run (the checkpoint files in zoo.dir changed); evaluate run (its input "
                                "import changed)")
    record = run.load("zoo.safetensors")[1]["checkpoints"][2]
    assert record["file"] == "seed1_step60.pt"


# --------------------------------------------------------------------------- refusals, in one line


def test_a_file_of_another_architecture_is_refused_in_one_line(tmp_path, zoo_dir, digits, capsys):
    folder = tmp_path / "zoo"
    folder.mkdir()
    for path in zoo_dir.iterdir():
        if path.suffix != ".json":
            (folder / path.name).write_bytes(path.read_bytes())
    wide = lambda shape, classes: mlp(shape, classes, hidden=32)
    torch.save(train(wide, digits, 9, (5,))[0], folder / "stranger.pt")
    with pytest.raises(RunError, match=r"zoo file stranger.pt does not fit classifier 'mlp' \(input \(1, 8, 8\), 10 "
                                       r"classes\): fc1.weight has shape \(32, 64\), the classifier's is \(64, 64\)"):
        run_pipeline(tmp_path / "run", zoo_config(folder, generate=False))
    code = cli.main(["run", "--zoo", str(folder), "--set", "classifier.arch=mlp", "--no-generator",
                     "--out", str(tmp_path / "cli"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "stranger.pt does not fit" in err


class Payload:
    """Unpickling this runs `open(marker, "w")`: the file appears only if the pickle is executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_a_pickled_object_is_refused_without_running_it(tmp_path, zoo_dir):
    folder = tmp_path / "zoo"
    folder.mkdir()
    for path in zoo_dir.iterdir():
        if path.suffix != ".json":
            (folder / path.name).write_bytes(path.read_bytes())
    marker = tmp_path / "payload-ran"
    with (folder / "evil.pt").open("wb") as handle:  # the state dict holds an object, not a tensor
        torch.save({"fc1.weight": Payload(marker)}, handle)
    with pytest.raises(pickle.UnpicklingError):  # torch's safe loader refuses it too
        torch.load(folder / "evil.pt", weights_only=True)
    proof = tmp_path / "proof"
    torch.save({"fc1.weight": Payload(tmp_path / "proof-ran")}, proof)
    torch.load(proof, weights_only=False)  # full unpickling runs the payload: it is real
    assert (tmp_path / "proof-ran").exists()
    with pytest.raises(RunError, match=r"zoo file evil.pt holds a pickled object other than tensors, refused "
                                       r"unopened: pdiff loads .pt files with torch.load\(weights_only=True\)"):
        run_pipeline(tmp_path / "run", zoo_config(folder, generate=False))
    assert not marker.exists()


def test_a_partial_target_needs_checkpoints_that_share_the_rest(tmp_path, zoo_dir):
    with pytest.raises(RunError, match=r"zoo file seed0_step120.safetensors differs from seed0_step60.safetensors in "
                                       r"fc1.weight, outside the target \(zoo.target=last-norm:1,head.\*\)"):
        run_pipeline(tmp_path / "run", zoo_config(zoo_dir, generate=False, **{"zoo.target": "last-norm:1,head.*"}))


def test_results_of_the_generator_are_never_dropped_by_turning_it_off(tmp_path, zoo_dir):
    run = run_pipeline(tmp_path / "run", zoo_config(zoo_dir, **GENERATOR), until="autoencoder")
    with pytest.raises(RunError, match="holds results of autoencoder, which this config's run does not have"):
        run_pipeline(run.path, zoo_config(zoo_dir, generate=False, **GENERATOR))
    assert run.stage_done("autoencoder")


def test_bad_folders_and_metadata_are_one_line_errors(tmp_path, zoo_dir):
    with pytest.raises(RunError, match="is not a folder"):
        run_pipeline(tmp_path / "a", zoo_config(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="no checkpoints in"):
        run_pipeline(tmp_path / "b", zoo_config(tmp_path / "empty"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # refused before anything is written
    folder = tmp_path / "zoo"
    folder.mkdir()
    for path in sorted(zoo_dir.glob("seed0*")):
        (folder / path.name).write_bytes(path.read_bytes())
    paths = find_checkpoints(folder)  # natural order: step60 before step120
    (folder / "zoo.csv").write_text("file,run\nseed0_step60.safetensors,a\n")
    with pytest.raises(RunError, match="zoo.csv has no row for seed0_step120.safetensors"):
        describe(folder, paths)
    (folder / "zoo.csv").write_text("file,run,lr\nseed0_step60.safetensors,a,0.1\nseed0_step120.safetensors,b,0.2\n"
                                    "gone.pt,c,0.3\n")
    with pytest.raises(RunError, match="zoo.csv names gone.pt, which is not a checkpoint"):
        describe(folder, paths)
    (folder / "zoo.csv").write_text("file,run,lr\nseed0_step60.safetensors,a,0.1\nseed0_step120.safetensors,b,0.2\n")
    checkpoints = describe(folder, paths)
    assert [(c.run, c.labels["lr"]) for c in checkpoints] == [("a", 0.1), ("b", 0.2)]


def test_the_fresh_reference_is_whole_runs_or_a_reason(tmp_path):
    def zoo(runs):
        return [Checkpoint(f"{i}.pt", run, i) for i, run in enumerate(runs)]

    ten = zoo([f"r{i // 2}" for i in range(20)])
    train, fresh, note = split_fresh(ten, "auto")
    assert [ten[i].run for i in fresh] == ["r8", "r8", "r9", "r9"] and not note and len(train) == 16
    assert split_fresh(ten, "r0, r3")[1] == [0, 1, 6, 7]
    assert "one run only" in split_fresh(zoo(["a"] * 4), "auto")[2]
    assert "does not say which run" in split_fresh(zoo([None, "a"]), "auto")[2]
    with pytest.raises(RunError, match="zoo.fresh names run 'r11', which the zoo does not have"):
        split_fresh(ten, "r11")
    rows = {"zoo": {"n": 10, "median": 97.0, "max_iou_median": 0.9}, "generated": {
        "n": 10, "median": 97.0, "good": 100.0, "max_iou_median": 0.9, "distinct_predictions": 8}}
    answer = verdict(rows, None, split_fresh(zoo(["a"] * 4), "auto")[2])
    assert answer.answer == "can't tell" and "import checkpoints of two or more runs" in answer.headline


def test_the_command_line_imports_with_a_plugin(tmp_path, zoo_dir, capsys, monkeypatch):
    """`python -m pdiff run --zoo DIR --plugin my_setup --no-generator`: the plugin registers the classifier."""
    plugin = tmp_path / "my_setup.py"
    plugin.write_text(textwrap.dedent("""
        import pdiff
        from pdiff.zoo.classifiers import mlp
        pdiff.register_classifier("my-mlp", lambda shape, classes: mlp(shape, classes))
    """))
    monkeypatch.chdir(tmp_path)
    code = cli.main(["run", "--zoo", str(zoo_dir), "--plugin", str(plugin), "--no-generator", "--quiet",
                     "--set", "classifier.arch=my-mlp", "--set", "analysis.umap=false", "--set", "device=cpu",
                     "--out", "explored"])
    out = capsys.readouterr().out
    assert code == 0 and "plan: import, evaluate, analyse run" in out and "parameter distances: aligned" in out
    assert build_classifier("my-mlp", (1, 8, 8), 10) is not None
    assert RunDir(tmp_path / "explored").manifest()["config"]["zoo"]["dir"] == str(zoo_dir.resolve())


def test_a_nearest_neighbour_is_taken_in_the_frame_that_puts_it_nearer():
    """Aligned to one reference, a model and the checkpoint it sits next to can be renumbered
    differently: each model's nearest checkpoint is the nearer of the two frames' answers."""
    zoo = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    aligned = {"zoo": zoo, "generated": torch.tensor([[9.0, 0.0], [1.0, 0.0]])}
    stored = {"zoo": zoo, "generated": torch.tensor([[0.5, 0.0], [5.0, 0.0]])}
    distance, index, near_distances, near = nearest_in_frames([aligned, stored], "generated", exclude_self=False)
    torch.testing.assert_close(distance, torch.tensor([0.5, 1.0]))
    assert index.tolist() == [0, 0] and near[0].tolist()[0] == 0 and near[1].tolist()[0] == 0
    torch.testing.assert_close(near_distances[:, 0], distance)


def test_the_memory_estimate_counts_the_imported_files(zoo_dir, monkeypatch):
    from pdiff.core import limits
    from pdiff.pipeline.runner import check_resources

    seen = []
    monkeypatch.setattr(limits, "check_memory", lambda config, *args: seen.append(config))
    config = zoo_config(zoo_dir)
    check_resources(config, {})
    assert seen[0].collect.num_checkpoints == SEEDS * len(SAVES) and seen[0].collect.fresh == 0
    assert config.collect.num_checkpoints == 200  # the run's own config is left as it is
