"""The verdict on constructed scorecards: each answer, its yardsticks, the weak-evidence caveats,
cheap baselines that match, and the fidelity hook. Pure: no run needed."""
from __future__ import annotations

import copy

from pdiff.judge.verdict import verdict


def row(n=100, median=90.0, ci=(89.5, 90.5), good=95.0, iou=0.80, iou_ci=(0.78, 0.82), nn=1.0, within=0.6,
        within_ci=(0.58, 0.62), distinct=80, errors=100, top=(1, 2, 3), top_share=0.1, **extra):
    out = {"n": n, "median": median, "median_ci": list(ci), "good": good, "max_iou_median": iou,
           "max_iou_median_ci": list(iou_ci), "nn_distance_median": nn, "nn_distance_median_ci": [nn * 0.9, nn * 1.1],
           "iou_within": within, "iou_within_ci": list(within_ci), "distinct_predictions": distinct,
           "errors_median": errors, "test_samples": 1000, "nn_top": list(top), "nn_top_share": top_share}
    return out | extra


def card(**groups):
    base = {"zoo": row(n=200, iou=0.90, iou_ci=(0.89, 0.91), nn=0.1, distinct=150, within=0.6),
            "generated": row(), "ae-reconstruction": row(n=200, iou=0.92, iou_ci=(0.91, 0.93))}
    for name, value in groups.items():
        base[name.replace("_", "-")] = value
    return {k: v for k, v in base.items() if v is not None}


def test_clearly_less_alike_than_the_zoo_is_new_with_no_caveats():
    result = verdict(card())
    assert result.answer == "new" and not result.weak and result.reference == "zoo"
    assert result.headline.startswith("New:") and "0.800" in result.headline and "0.900" in result.headline
    assert [e.aspect for e in result.evidence] == ["accuracy", "similarity", "diversity", "fidelity"]
    assert [e.status for e in result.evidence] == ["good", "good", "good", "unknown"]
    assert "0.800 [0.780, 0.820]" in result.evidence[1].text  # the interval is quoted
    assert result.numbers["generated_max_iou"] == 0.80 and result.numbers["reference_max_iou"] == 0.90


def test_as_alike_as_the_zoo_or_its_reconstructions_is_memorized():
    result = verdict(card(generated=row(iou=0.90, iou_ci=(0.88, 0.905))))
    assert result.answer == "memorized"
    assert result.headline.startswith("Memorized:") and "between the zoo's own checkpoints 0.900" in result.headline
    # clearly below the zoo's own members, but not below the autoencoder's reconstructions of them
    result = verdict(card(zoo=row(n=200, iou=0.99, iou_ci=(0.985, 0.995), nn=0.1),
                          generated=row(iou=0.915, iou_ci=(0.90, 0.915))))
    assert result.answer == "memorized" and "reconstructions of training checkpoints 0.920" in result.headline


def test_a_difference_smaller_than_one_test_sample_is_not_evidence_of_novelty():
    """With 10 errors per model IoU moves in steps of 1/11: 0.900 vs 0.909 is one sample apart."""
    coarse = card(zoo=row(n=200, iou=1.0, iou_ci=(1.0, 1.0), errors=10, nn=0.06),
                  generated=row(iou=0.90, iou_ci=(0.90, 0.90), errors=10, nn=0.34),
                  ae_reconstruction=row(n=200, iou=0.909, iou_ci=(0.909, 1.0), errors=10))
    result = verdict(coarse)
    assert result.answer == "memorized" and result.weak
    assert any("only 10 of 1000 test samples wrong" in c for c in result.caveats)
    assert any("at its ceiling" in c and "1.000" in c for c in result.caveats)
    assert result.headline.endswith("The evidence is weak.")
    # parameter distance says "far", behaviour says "copy": the similarity text explains the disagreement
    assert "5.7x the spacing" in result.evidence[1].text and "The two measures disagree" in result.evidence[1].text


def test_held_out_checkpoints_are_the_yardstick_when_the_run_has_them():
    result = verdict(card(heldout=row(n=20, iou=0.85, iou_ci=(0.84, 0.86))))
    assert result.reference == "heldout"
    assert "for held-out checkpoints of the same SGD run it is 0.850" in result.evidence[1].text


def test_identical_generated_models_are_collapsed_even_when_accurate():
    result = verdict(card(generated=row(n=20, median=98.3, distinct=1, within=1.0, within_ci=(1.0, 1.0))))
    assert result.answer == "collapsed"
    assert "all 20 generated models make exactly the same predictions" in result.headline
    assert result.evidence[2].status == "bad"


def test_mostly_bad_models_are_worse():
    result = verdict(card(generated=row(good=30.0, median=70.0, ci=(65.0, 75.0))))
    assert result.answer == "worse" and "only 30%" in result.headline
    assert result.evidence[0].status == "bad"


def test_a_pile_up_near_a_few_checkpoints_and_a_matching_baseline_are_named():
    piled = row(iou=0.90, iou_ci=(0.88, 0.905), top=(95, 93, 94), top_share=0.88)
    result = verdict(card(generated=piled, averaged_16=row(median=90.2, iou=0.88, iou_ci=(0.87, 0.89)),
                          gaussian=row(median=80.0, iou=0.5, iou_ci=(0.4, 0.6))))
    assert "88 of 100 are nearest to training checkpoints #93-#95, 3 of the zoo's 200" in result.headline
    assert result.cheap_matches == ("averaged-16 (90.20%, max IoU 0.880)",)  # gaussian is not accurate enough
    assert result.evidence[2].status == "bad" and "pile up" in result.evidence[2].text


def test_a_pile_up_is_judged_against_an_even_spread_over_the_zoo():
    """96 of 100 models near 3 of 20 checkpoints is a pile-up (an even spread gives those 3 a share of 0.15);
    near 3 of 5 it is not (0.6 of an even spread already)."""
    piled = row(top=(8, 9, 10), top_share=0.96)
    assert "pile up" in verdict(card(zoo=row(n=20, iou=0.8, iou_ci=(0.76, 1.0)), generated=piled)).evidence[2].text
    small = verdict(card(zoo=row(n=5, iou=0.9, iou_ci=(0.85, 0.95)), generated=row(top=(0, 1, 2), top_share=0.7)))
    assert "pile up" not in small.evidence[2].text


def test_less_diverse_than_the_zoo_is_bad_diversity():
    result = verdict(card(generated=row(within=0.8, within_ci=(0.78, 0.82))))
    assert result.answer == "new" and result.evidence[2].status == "bad"
    assert "less diverse than the zoo" in result.evidence[2].text


def test_a_difference_within_the_tolerance_is_about_as_diverse():
    """Tight intervals separate 0.56 from 0.52, but 0.04 is inside the 0.05 the fidelity targets allow."""
    zoo = row(within=0.52, within_ci=(0.505, 0.536))
    close = verdict(card(zoo=zoo, generated=row(within=0.56, within_ci=(0.538, 0.58))))
    assert close.evidence[2].status == "good" and "about as diverse as the zoo" in close.evidence[2].text
    far = verdict(card(zoo=zoo, generated=row(within=0.60, within_ci=(0.58, 0.62))))
    assert far.evidence[2].status == "bad" and "less diverse than the zoo" in far.evidence[2].text


def test_fidelity_hook():
    assert "not measured" in verdict(card()).evidence[3].text
    given = verdict(card(), fidelity={"latent_spread_ratio": 0.25, "latent_fd": 3.0, "latent_fd_floor": 0.5,
                                      "latent_precision": 0.9, "latent_recall": 0.2, "latent_self_recall": 0.99})
    text = given.evidence[3].text
    assert given.evidence[3].status == "bad"
    assert "0.25x as widely" in text and "Fréchet distance 3 (two halves of the zoo: 0.5)" in text
    assert "recall 0.20 (of 0.99 possible)" in text
    in_row = verdict(card(generated=row(latent_spread_ratio=0.9)))  # from the scorecard, as the analysis writes it
    assert in_row.evidence[3].status == "good" and "0.90x" in in_row.evidence[3].text
    poor_recall = verdict(card(generated=row(latent_spread_ratio=1.0, latent_recall=0.4, latent_self_recall=0.9)))
    assert poor_recall.evidence[3].status == "bad"  # 0.4 is under half of what two halves of the zoo reach


def test_few_models_and_missing_analysis():
    small = verdict(card(generated=row(n=5)))
    assert any("Only 5 generated models" in c for c in small.caveats)
    accuracy_only = {g: {k: v for k, v in r.items() if k in ("n", "median", "best", "mean", "min", "std")}
                     for g, r in card().items()}
    result = verdict(accuracy_only)
    assert result.answer == "unknown" and "only accuracy" in result.headline
    assert verdict({"zoo": row()}).answer == "unknown"


def test_verdict_does_not_modify_its_input():
    rows = card()
    before = copy.deepcopy(rows)
    verdict(rows)
    assert rows == before
