"""Time estimates: the running stage from its progress, pending stages from other runs' records."""
from __future__ import annotations

import copy

import pytest

from pdiff.core.config import RunConfig, config_to_dict, with_overrides
from pdiff.core.presets import preset
from pdiff.pipeline.estimate import from_other_runs, remaining


def manifest(overrides=None, seconds=None, device="cpu"):
    config = config_to_dict(with_overrides(preset("digits"), overrides or {}))
    stages = {}
    for name in ("collect", "autoencoder", "diffusion", "sample", "baselines", "evaluate", "analyse"):
        done = seconds is not None and name in seconds
        stages[name] = {"status": "done", "seconds": seconds[name], "device": device} if done else {"status": "pending"}
    return {"config": config, "device": device, "stages": stages}


def test_remaining_time_of_the_running_stage():
    left = remaining({"done": 300, "total": 1200, "info": {"phase": "checkpoints 1/1"}}, started=100.0, now=130.0)
    assert left.seconds == pytest.approx(90.0) and "checkpoints 1/1" in left.basis
    assert remaining({"done": 0, "total": 10}, 100.0, 130.0) is None
    assert remaining({"done": 10, "total": 10}, 100.0, 130.0) is None
    assert remaining(None, 100.0, 130.0) is None


def test_pending_stages_from_another_run_exact_or_scaled():
    finished = manifest(seconds={"collect": 4.0, "autoencoder": 60.0, "diffusion": 45.0, "sample": 12.0,
                                 "baselines": 0.1, "evaluate": 1.0, "analyse": 40.0})
    new = manifest({"autoencoder.steps": RunConfig().autoencoder.steps // 2})  # half the steps: half the time
    new["stages"]["collect"] = {"status": "done", "seconds": 4.0}
    out = from_other_runs(new, [finished])
    assert "collect" not in out  # done already
    assert out["autoencoder"].seconds == pytest.approx(30.0) and "scaled" in out["autoencoder"].basis
    assert out["diffusion"].seconds == 45.0 and "same settings" in out["diffusion"].basis


def test_only_comparable_records_count():
    other = manifest(seconds={"autoencoder": 60.0}, device="cuda:0")
    assert from_other_runs(manifest(), [other]) == {}  # another kind of device
    reused = copy.deepcopy(manifest(seconds={"autoencoder": 60.0}))
    reused["stages"]["autoencoder"]["reused"] = "store"
    assert from_other_runs(manifest(), [reused]) == {}  # linked from the store: its time is not a measurement
