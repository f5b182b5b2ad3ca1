"""No sentence contradicts its numbers: every comparison the explorer states in words, fed numbers on
both sides of its threshold (and on it), says what the numbers say; arrows follow the sign.

The five contradictions an outside walkthrough found (issue 21) are cases here: the Denoising story's
hard threshold, the diversity tick beside fewer distinct predictions, up-arrows on lower values, the
extrapolation warning at guidance scale 0, and the latent caption that called groups dimensions.
"""
from __future__ import annotations

import pytest

from pdiff.judge import statements as say
from pdiff.judge import verdict as answers
from pdiff.judge.verdict import GOOD_SHARE, SPREAD_RANGE

STEP = 100 / 540  # one digits test sample, in points


@pytest.mark.parametrize("value,reference,tolerance,word", [
    (1.0, 0.0, 0.5, say.ABOVE), (-1.0, 0.0, 0.5, say.BELOW), (0.4, 0.0, 0.5, say.SAME), (-0.4, 0.0, 0.5, say.SAME),
    (0.5, 0.0, 0.5, say.SAME), (0.51, 0.0, 0.5, say.ABOVE), (0.0, 0.0, 0.0, say.SAME), (1e-9, 0.0, 0.0, say.ABOVE)])
def test_relation_on_both_sides_of_the_tolerance(value, reference, tolerance, word):
    assert say.relation(value, reference, tolerance) == word


@pytest.mark.parametrize("difference,arrow,text", [
    (-13.0, "down", "−13"), (13.0, "up", "+13"), (0.004, "off", "0"), (-0.004, "off", "0"), (None, "off", None)])
def test_arrows_follow_the_sign_of_the_number_shown(difference, arrow, text):
    """"↑ zoo, 100 at random: 77" under 64 was an up-arrow on a lower value: the arrow is the sign's."""
    assert say.arrow(difference, 0) == arrow
    if text is not None:
        assert say.signed(difference, 0) == text


def test_arrow_of_a_difference_that_rounds_to_zero_at_the_decimals_shown():
    assert say.arrow(0.004, 2) == "off" and say.arrow(0.006, 2) == "up" and say.arrow(-0.006, 2) == "down"
    assert say.signed(-0.006, 2) == "−0.01" and say.signed(0.004, 2) == "0.00"


# --------------------------------------------------------------------------- Denoising


def test_denoising_story_the_case_of_the_issue():
    """Decoded pure noise 97.13 % beat x0 at t = 999 (96.7 %) while the page said the denoiser's guess,
    not the decoder alone, made it work."""
    text = say.denoising_story(999, 96.7, 97.1, 98.15, 97.13, STEP)
    assert "not the decoder alone" not in text
    assert "as much as sampling reaches" in text  # 97.13 vs 97.10: within one test sample


@pytest.mark.parametrize("last,noise,words", [
    (98.0, 97.0, "points below what sampling reaches"),  # diffusion clearly better than decoded noise
    (97.1, 97.13, "as much as sampling reaches"),  # within one test sample
    (96.0, 97.13, "points above what sampling reaches"),  # decoded noise better than the samples
])
def test_denoising_story_compares_decoded_noise_with_the_samples(last, noise, words):
    text = say.denoising_story(999, 96.0, last, 98.0, noise, STEP)
    assert words in text
    other = {"points below what sampling reaches", "as much as sampling reaches", "points above what sampling reaches"}
    assert not any(w in text for w in other - {words})
    if "below" in words:
        assert f"{last - noise:.2f} points below" in text and "not the decoder alone" in text
    if "above" in words:
        assert f"{noise - last:.2f} points above" in text


@pytest.mark.parametrize("first,last,words", [
    (60.0, 90.0, "Sampling raises the accuracy by 30.00 points"),
    (97.0, 97.0 + STEP / 2, "Sampling hardly changes the accuracy"),
    (97.0, 96.0, "Sampling lowers the accuracy by 1.00 points"),
])
def test_denoising_story_says_how_sampling_changes_the_accuracy(first, last, words):
    text = say.denoising_story(99, first, last, 97.0, None, STEP)
    assert words in text and f"scores {first:.2f}% on average" in text and "Decoding pure noise" not in text


# --------------------------------------------------------------------------- Autoencoder, Latent space


@pytest.mark.parametrize("good,words", [(GOOD_SHARE, "maps most codes to a working classifier"),
                                        (GOOD_SHARE - 0.1, "needs the codes the diffusion samples"),
                                        (95.0, "maps most codes"), (10.0, "only 10%")])
def test_decoded_noise_sentence_follows_the_share_in_the_zoos_range(good, words):
    assert words in say.decoded_noise(96.9, 97.8, good)
    assert "zoo's 97.80%" in say.decoded_noise(96.9, 97.8, None)


@pytest.mark.parametrize("ratio,words", [(SPREAD_RANGE[0] - 0.01, "narrower"), (SPREAD_RANGE[0], "about the training"),
                                         (1.0, "about the training"), (SPREAD_RANGE[1], "about the training"),
                                         (SPREAD_RANGE[1] + 0.01, "wider")])
def test_spread_caption_calls_lines_groups_and_reads_the_ratio(ratio, words):
    text = say.spread_caption(ratio)
    assert text.startswith("Each line is one group of models") and "Each line is the spread" not in text
    assert f"{ratio:.2f}, {words}" in text
    assert "Median ratio" not in say.spread_caption(None)


# --------------------------------------------------------------------------- Guided


def test_guidance_scale_zero_is_unconditional_not_extrapolation():
    kind, text = say.guided_notice(100.0, 0.0, (15.0, 80.0), 70.0)
    assert kind == "info" and "unconditional" in text and "extrapolate" not in text


@pytest.mark.parametrize("requested,kind", [(14.9, "warning"), (15.0, ""), (50.0, ""), (80.0, ""), (80.1, "warning")])
def test_guided_warning_only_outside_the_zoos_range(requested, kind):
    got, text = say.guided_notice(requested, 2.0, (15.0, 80.0), 60.0)
    assert got == kind
    if kind:
        assert "outside the zoo's range" in text
        assert ("above the zoo's best" in text) == (requested > 80.0)


# --------------------------------------------------------------------------- Compare, neighbours


@pytest.mark.parametrize("ci,word", [((0.1, 0.5), "real change"), ((-0.5, -0.1), "real change"),
                                     ((-0.1, 0.5), "within noise"), ((0.0, 0.5), "within noise"), (None, "")])
def test_change_word_from_the_interval(ci, word):
    assert say.change_word(0.3, ci) == word


@pytest.mark.parametrize("checkpoint,fresh,words", [(1.0, 0.8, "closer to a training checkpoint's"),
                                                    (0.7, 0.9, "closer to a fresh SGD model's"),
                                                    (0.9, 0.9 - 0.05, "about as close to either")])
def test_errs_like_sentence(checkpoint, fresh, words):
    text = say.errs_like_sentence("generated #3", "zoo #7", checkpoint, "fresh #2", fresh, 0.077)
    assert words in text and f"IoU {checkpoint:.3f}" in text and "zoo #7" in text


def test_errs_like_sentence_without_fresh_training():
    assert "no fresh SGD models" in say.errs_like_sentence("zoo #1", "zoo #2", 1.0, None, None, 0.1)


# --------------------------------------------------------------------------- the verdict's diversity line


def _rows(distinct: int, same_n: float) -> dict:
    gen = {"n": 100, "median": 97.8, "distinct_predictions": distinct, "zoo_distinct_same_n": same_n,
           "max_iou_median": 1.0, "good": 95.0}
    return {"zoo": {"n": 200, "median": 97.8, "distinct_predictions": 110}, "generated": gen}


@pytest.mark.parametrize("distinct,same_n,status,words", [(64, 77, "bad", "fewer than the zoo"),
                                                          (77, 77, "good", "as many or more than the zoo"),
                                                          (80, 77, "good", "as many or more than the zoo")])
def test_diversity_tick_matches_the_counts(distinct, same_n, status, words):
    """A green tick "about as diverse as the zoo" stood beside 64 distinct prediction sets against 77."""
    evidence = {e.aspect: e for e in answers.verdict(_rows(distinct, same_n)).evidence}["diversity"]
    assert evidence.status == status and words in evidence.text
    assert f"make {distinct} different sets" in evidence.text and f"make {same_n:.0f}" in evidence.text
