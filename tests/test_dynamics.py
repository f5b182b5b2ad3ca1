"""Memorization along training: log-spaced snapshots of the denoiser, the dynamics stage that
judges the models of each, and the onset read off the records."""
from __future__ import annotations

import pytest
import torch
from conftest import tiny_config

from pdiff.core.artifacts import DENOISER, DYNAMICS
from pdiff.core.training import log_spaced_steps
from pdiff.judge.dynamics import first_good, onset, positions_tensor
from pdiff.pipeline.loaders import load_generator, snapshot_steps
from pdiff.pipeline.report import metrics_table


@pytest.mark.parametrize("total,count,expected", [
    (2000, 8, 8), (300, 8, 8), (10, 8, 7), (5, 8, 5), (2000, 1, 1), (2000, 0, 0), (1, 3, 1),
])
def test_log_spaced_steps(total, count, expected):
    steps = log_spaced_steps(total, count)
    assert len(steps) == expected and steps == sorted(set(steps))
    if steps:
        assert steps[-1] == total and steps[0] == (max(1, total // 100) if count > 1 else total)


def test_the_last_snapshot_is_the_trained_denoiser(tiny_run):
    steps = snapshot_steps(tiny_run)
    config = tiny_config()
    assert steps == log_spaced_steps(config.diffusion.steps, config.diffusion.snapshots)
    state = tiny_run.load(DENOISER)[0]
    final = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    last = {k[len(f"snapshot.{steps[-1]}."):]: v for k, v in state.items() if k.startswith(f"snapshot.{steps[-1]}.")}
    assert final.keys() == last.keys() and all(torch.equal(final[k], last[k]) for k in final)
    first = {k[len(f"snapshot.{steps[0]}."):]: v for k, v in state.items() if k.startswith(f"snapshot.{steps[0]}.")}
    assert any(not torch.equal(first[k], final[k]) for k in final)  # training moved the weights
    early = load_generator(tiny_run, config, torch.device("cpu"), snapshot=steps[0])
    assert early.denoiser.length == load_generator(tiny_run, config, torch.device("cpu")).denoiser.length


def test_the_dynamics_stage_judges_every_snapshot_like_the_analysis(tiny_run):
    tensors, meta = tiny_run.load(DYNAMICS)
    records = meta["snapshots"]
    config = tiny_config()
    assert [r["step"] for r in records] == snapshot_steps(tiny_run) == tensors["steps"].tolist()
    assert tensors["accuracy"].shape == (len(records), config.analysis.snapshot_models)
    for i, record in enumerate(records):
        assert record["median"] == pytest.approx(tensors["accuracy"][i].double().median().item(), abs=0.2)
        resolved = [p["position"] for p in record["ruler"].values() if p["position"] is not None]
        assert record["position"] == (min(resolved) if resolved else None)
    ruler = metrics_table(tiny_run).ruler
    assert set(records[-1]["ruler"]) == set(ruler)  # the same anchors and measures as the final verdict


def test_onset_is_where_copying_starts_for_good():
    def rec(step, answer, good=100.0):
        return {"step": step, "answer": answer, "good": good, "ruler": {"parameters": {"position": 0.1}}}

    records = [rec(10, "like fresh training", 20.0), rec(20, "between"), rec(40, "copies"), rec(80, "between"),
               rec(160, "copies"), rec(320, "copies")]
    assert onset(records) == 160  # copies at 40 was not for good
    assert onset(records, ("copies", "between")) == 20
    assert onset(records[:4]) is None
    assert first_good(records) == 20 and first_good(records, 10.0) == 10
    assert positions_tensor(records, "parameters").tolist() == [0.1] * 6
    assert torch.isnan(positions_tensor(records, "behaviour")).all()
