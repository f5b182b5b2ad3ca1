"""The answer on cases of known nature (pdiff/calibration.py), the small version of
benchmarks/bench_verdict.py: on the session's tiny run every case gets the answer it must get."""
from __future__ import annotations

import pytest
import torch

from pdiff.calibration import COPY_LEVELS, judge_case, known_cases
from pdiff.pipeline.loaders import training_rows


@pytest.fixture(scope="module")
def cases(tiny_run):
    return known_cases(tiny_run, n=30, seed=0)


def test_the_cases_are_what_they_say(tiny_run, cases):
    zoo = training_rows(tiny_run).float()
    by_name = {c.name: c for c in cases}
    assert [c.truth for c in cases].count("copies") == len(COPY_LEVELS) + 1  # three noise levels and the half-zoo
    repeated = by_name["one checkpoint x30"].params
    assert (repeated == repeated[0]).all() and any(torch.equal(repeated[0], z) for z in zoo)
    half = zoo[: len(zoo) // 2]
    assert all(any(torch.equal(p, z) for z in half) for p in by_name["half-zoo generator"].params)
    noisy = by_name["copies 1.0%"].params
    assert ((noisy[:, None] - zoo[None]).norm(dim=-1).min(1).values < 0.05 * zoo.std(0).norm()).all()
    fresh = by_name["fresh SGD, unseen"].params
    assert not any(torch.equal(f, z) for f in fresh for z in zoo)


@pytest.mark.slow
def test_every_case_gets_its_answer(tiny_run, cases, tmp_path):
    wrong = {}
    for case in cases:
        result = judge_case(tiny_run, case.params, tmp_path / "case")
        if result.answer != case.truth:
            wrong[case.name] = (case.truth, result.answer, result.headline)
        if case.expect_uncovered:
            assert any(c.startswith("The generator does not cover") for c in result.caveats), case.name
    assert wrong == {}
