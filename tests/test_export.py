"""Export: one model of a run as a full classifier state dict that loads with load_state_dict and
scores, by a plain forward pass, exactly what the run recorded."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from pdiff import cli
from pdiff.core.errors import RunError
from pdiff.export import check_export, export_state, load_exported, read_export, save_export
from pdiff.pipeline.loaders import load_evaluation, model_groups
from pdiff.zoo.classifiers import build_classifier


@pytest.mark.parametrize("group,index", [("generated", 3), ("zoo", -1), ("gaussian", 0), ("decoder-only", 5)])
def test_export_round_trips_to_the_recorded_accuracy(tiny_run, tmp_path, group, index):
    out = tmp_path / f"{group}.safetensors"
    exported = save_export(tiny_run, group, index, out)
    recorded = load_evaluation(tiny_run).accuracy[group][index].item()
    assert exported.meta["recorded_accuracy"] == pytest.approx(recorded)
    assert check_export(tiny_run, out) == pytest.approx(recorded, abs=1e-4)  # float32 record

    # what the README shows: the classifier from the registry, then load_state_dict
    net = build_classifier(exported.meta["arch"], tuple(exported.meta["input_shape"]), exported.meta["num_classes"])
    net.load_state_dict(load_file(out))  # strict: every key of the classifier, nothing else
    vector = model_groups(tiny_run)[group][index]
    layout_names = exported.meta["target"]
    flat = torch.cat([net.state_dict()[name].reshape(-1) for name in layout_names])
    torch.testing.assert_close(flat, vector.float())  # the target parameters are the model's own


def test_everything_outside_the_target_is_the_runs_frozen_base(tiny_run):
    base, _ = tiny_run.load("base.safetensors")
    exported = export_state(tiny_run, "generated", 0)
    for name, tensor in base.items():
        if name not in exported.meta["target"]:
            assert torch.equal(exported.state[name], tensor), name


def test_load_exported_and_the_cli(tiny_run, tmp_path, capsys):
    out = tmp_path / "model.safetensors"
    assert cli.main(["export", str(tiny_run.path), "--group", "generated", "--index", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    recorded = load_evaluation(tiny_run).accuracy["generated"][2].item()
    assert f"recorded test accuracy {recorded:.2f}%" in text and f"scores {recorded:.2f}%" in text
    model = load_exported(out)
    assert not model.training and read_export(out).meta["group"] == "generated"


def test_bad_group_or_index_is_a_one_line_error(tiny_run, tmp_path, capsys):
    with pytest.raises(RunError, match="no group 'nope'; its groups are: zoo, fresh, generated"):
        export_state(tiny_run, "nope", 0)
    with pytest.raises(RunError, match=r"--index must be 0\.\.19"):
        export_state(tiny_run, "generated", 20)
    assert cli.main(["export", str(tiny_run.path), "--index", "99", "--out", str(tmp_path / "x")]) == 2
    assert "error:" in capsys.readouterr().err and not (tmp_path / "x").exists()
