"""The verdict on constructed scorecards: every answer on both sides of its threshold, the ruler's
measures (which one decides, one that cannot tell), the caveats, cheap baselines that get as far,
and words that follow their numbers. Pure: no run needed."""
from __future__ import annotations

import copy

import pytest

from pdiff.judge import verdict as v
from pdiff.judge.ruler import Axis
from pdiff.judge.verdict import verdict, zone


def place(behaviour=None, parameters=None):
    return {m: {"position": p, "ci": None if p is None else [p - 0.05, p + 0.05]}
            for m, p in (("behaviour", behaviour), ("parameters", parameters))}


def row(n=100, median=90.0, ci=(89.5, 90.5), good=95.0, iou=0.90, nn=0.5, within=0.6, distinct=80, errors=100,
        same_n=80.0, ruler=None, **extra):
    out = {"n": n, "median": median, "median_ci": list(ci), "good": good, "max_iou_median": iou,
           "max_iou_median_ci": [iou - 0.01, iou + 0.01], "nn_distance_median": nn,
           "nn_distance_median_ci": [nn * 0.9, nn * 1.1], "iou_within": within, "distinct_predictions": distinct,
           "zoo_distinct_same_n": same_n, "errors_median": errors, "test_samples": 1000,
           "ruler": ruler if ruler is not None else place(0.5, 0.5)}
    return out | extra


def axes(behaviour=True, parameters=True):
    return {"behaviour": Axis("behaviour", 0.99, 0.88, (0.98, 0.995), (0.87, 0.89), behaviour,
                              "" if behaviour else "copies and fresh SGD make nearly the same mistakes").record(),
            "parameters": Axis("parameters", 0.02, 1.0, (0.019, 0.021), (0.9, 1.1), parameters,
                               "" if parameters else "fresh SGD ends up hardly farther").record()}


def card(**groups):
    base = {"zoo": row(n=200, distinct=150), "generated": row()}
    for name, value in groups.items():
        base[name.replace("_", "-")] = value
    return {k: r for k, r in base.items() if r is not None}


@pytest.mark.parametrize("position,answer", [
    (-0.3, "copies"), (0.0, "copies"), (v.COPIES_BELOW - 1e-6, "copies"), (v.COPIES_BELOW, "between"),
    (v.FRESH_FROM - 1e-6, "between"), (v.FRESH_FROM, "like fresh training"), (1.0, "like fresh training"),
    (v.BEYOND_ABOVE, "like fresh training"), (v.BEYOND_ABOVE + 1e-6, "beyond fresh training"),
])
def test_each_answer_on_both_sides_of_its_threshold(position, answer):
    assert zone(position) == answer
    result = verdict(card(generated=row(ruler=place(position, position))), axes())
    assert result.answer == answer and result.position == position
    assert result.headline.lower().startswith(answer.split()[0])
    assert f"position {v.position_text(position)}" in result.headline


def test_an_interval_across_a_boundary_is_a_caveat_not_another_answer():
    near = {"behaviour": {"position": None, "ci": None},
            "parameters": {"position": v.COPIES_BELOW + 0.02, "ci": [v.COPIES_BELOW - 0.05, v.COPIES_BELOW + 0.1]}}
    result = verdict(card(generated=row(ruler=near)), axes(behaviour=False))
    assert result.answer == "between"
    assert any("reaches into copies: the answer sits near a boundary" in c for c in result.caveats)
    inside = {"behaviour": {"position": None, "ci": None}, "parameters": {"position": 0.6, "ci": [0.5, 0.7]}}
    assert not any("boundary" in c for c in verdict(card(generated=row(ruler=inside)), axes(behaviour=False)).caveats)


@pytest.mark.parametrize("position,text", [(0.395, "0.395"), (0.4, "0.40"), (0.41, "0.41"), (0.7995, "0.799"),
                                           (1.2549, "1.255"), (1.2551, "1.26"), (0.39996, "0.39996")])
def test_a_position_is_never_printed_across_its_threshold(position, text):
    assert v.position_text(position) == text
    result = verdict(card(generated=row(ruler=place(None, position))), axes(behaviour=False))
    assert f"position {text}" in result.headline and result.answer == zone(position)


def test_the_closer_measure_decides_and_the_headline_says_which():
    result = verdict(card(generated=row(ruler=place(behaviour=0.9, parameters=0.4))), axes())
    assert result.answer == "between" and result.decided_by == "parameters"
    assert "by their parameters (the closer of the two measures)" in result.headline
    statuses = {e.aspect: e.status for e in result.evidence}
    assert statuses["behaviour"] == "good" and statuses["parameters"] == "bad"
    result = verdict(card(generated=row(ruler=place(behaviour=0.1, parameters=1.2))), axes())
    assert result.answer == "copies" and result.decided_by == "behaviour"


def test_a_measure_that_cannot_tell_leaves_the_other_to_decide_and_says_why():
    result = verdict(card(generated=row(ruler=place(behaviour=None, parameters=1.1))), axes(behaviour=False))
    assert result.answer == "like fresh training" and result.decided_by == "parameters"
    assert "the closer of the two" not in result.headline
    behaviour = next(e for e in result.evidence if e.aspect == "behaviour")
    assert behaviour.status == "unknown" and "cannot tell" in behaviour.text and "nearly the same mistakes" in \
        behaviour.text


def test_neither_measure_telling_is_cant_tell_with_both_reasons():
    result = verdict(card(generated=row(ruler=place(None, None))), axes(False, False))
    assert result.answer == "can't tell" and result.position is None
    assert "nearly the same mistakes" in result.headline and "hardly farther" in result.headline
    result = verdict(card(generated=row(ruler={})), None)
    assert result.answer == "can't tell" and "no reference of fresh training" in result.headline


def test_identical_generated_models_are_collapsed_before_anything_else():
    result = verdict(card(generated=row(distinct=1, ruler=place(0.0, 0.0))), axes())
    assert result.answer == "collapsed" and "all 100 generated models" in result.headline
    assert verdict(card(generated=row(distinct=2, ruler=place(0.0, 0.0))), axes()).answer == "copies"


@pytest.mark.parametrize("good,answer", [(49.9, "worse"), (50.0, "like fresh training")])
def test_mostly_models_outside_the_zoos_range_are_worse(good, answer):
    result = verdict(card(generated=row(good=good, median=60.0, ruler=place(1.0, 1.0))), axes())
    assert result.answer == answer
    if answer == "worse":
        assert "only 50% of the generated models reach the zoo's range" in result.headline
    accuracy = next(e for e in result.evidence if e.aspect == "accuracy")
    assert accuracy.status == ("bad" if good < 50 else "good")


def test_a_cheap_baseline_as_far_along_and_as_accurate_is_named():
    cheap = row(median=90.2, ruler=place(0.55, 0.55))
    result = verdict(card(generated=row(ruler=place(0.5, 0.5)), averaged_16=cheap,
                          gaussian=row(median=80.0, ruler=place(1.5, 1.5)),  # far along, but not accurate
                          noise_rel_0_01=row(median=90.0, ruler=place(0.1, 0.1))), axes())  # accurate, not as far
    assert result.cheap_matches == ("averaged-16 (90.20%, position 0.55)",)
    assert "A cheap baseline gets as far: averaged-16" in result.headline
    # the reference groups are never "cheap baselines", however they are placed
    result = verdict(card(generated=row(ruler=place(0.5, 0.5)), fresh=row(ruler=place(1.0, 1.0)),
                          copies=row(ruler=place(0.0, 0.0))), axes())
    assert result.cheap_matches == ()


@pytest.mark.parametrize("recall,self_recall,ratio,uncovered", [
    (0.69, 1.0, 1.0, True), (0.70, 1.0, 1.0, False), (0.5, 0.7, 1.0, False), (0.95, 1.0, 0.69, True),
    (0.95, 1.0, 0.70, False), (0.95, 1.0, 1.30, False), (0.95, 1.0, 1.31, True),
])
def test_the_fidelity_caveat_follows_its_thresholds(recall, self_recall, ratio, uncovered):
    gen = row(latent_recall=recall, latent_self_recall=self_recall, latent_spread_ratio=ratio, latent_precision=0.9)
    result = verdict(card(generated=gen), axes())
    fidelity = next(e for e in result.evidence if e.aspect == "fidelity")
    assert fidelity.status == ("bad" if uncovered else "good")
    assert any(c.startswith("The generator does not cover") for c in result.caveats) == uncovered
    assert result.answer == "between"  # a caveat, never a change of the answer


@pytest.mark.parametrize("distinct,same_n,words,status", [
    (64, 77.0, "fewer than the zoo", "bad"), (77, 77.0, "as many or more than the zoo", "good"),
    (80, 77.0, "as many or more than the zoo", "good"),
])
def test_diversity_words_follow_the_counts(distinct, same_n, words, status):
    result = verdict(card(generated=row(distinct=distinct, same_n=same_n)), axes())
    diversity = next(e for e in result.evidence if e.aspect == "diversity")
    assert diversity.text.endswith(f": {words}.") and diversity.status == status
    assert f"make {distinct} different sets" in diversity.text and f"make {same_n:.0f}" in diversity.text


def test_few_errors_few_models_and_a_missing_analysis():
    result = verdict(card(generated=row(n=5, errors=10)), axes())
    assert any("only 10 of 1000 test samples wrong" in c for c in result.caveats)
    assert any("Only 5 generated models" in c for c in result.caveats) and result.weak
    incomplete = {"zoo": {"n": 10, "median": 90.0}, "generated": {"n": 10, "median": 89.0}}
    assert verdict(incomplete).answer == "unknown"
    assert verdict({"zoo": row()}).answer == "unknown"


def test_verdict_does_not_modify_its_input():
    rows, ruler = card(), axes()
    before = copy.deepcopy((rows, ruler))
    verdict(rows, ruler)
    assert (rows, ruler) == before


def test_the_glossary_names_every_metric_and_teaches_the_method():
    """Every metric has a name for readers, no definition leaks a raw scorecard key, and the method's
    words (issue 21) are defined."""
    import re

    from pdiff.judge.glossary import METRIC_NAMES, METRICS, TERMS

    assert set(METRIC_NAMES) == set(METRICS)
    raw = re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b")  # zoo_distinct_same_n, latent_self_recall, ...
    leaks = {k: raw.findall(text) for k, text in {**METRICS, **TERMS}.items() if raw.findall(text)}
    assert leaks == {}
    for term in ("autoencoder", "latent", "diffusion", "x0-prediction", "timestep", "guidance", "UMAP", "fresh SGD",
                 "copies", "the ruler", "frozen backbone", "target parameters"):
        assert TERMS.get(term), term
