"""The analysis stage's artifacts on the tiny run, checked against their definitions."""
from __future__ import annotations

import pytest
import torch
from conftest import copy_run, tiny_config
from torch.testing import assert_close

from pdiff.core.errors import RunError
from pdiff.judge import metrics
from pdiff.pipeline.loaders import load_codec, load_evaluation, model_groups
from pdiff.pipeline.runner import run_stage


@pytest.fixture(scope="module")
def analysis(tiny_run):
    tensors, meta = tiny_run.load("analysis.safetensors")
    return tensors, meta


def test_one_projection_row_per_model(tiny_run, analysis):
    tensors, meta = analysis
    groups = model_groups(tiny_run)
    assert meta["groups"] == list(groups) and meta["sizes"] == [len(v) for v in groups.values()]
    for g, params in groups.items():
        for kind in ("params_pca", "latent_pca"):
            xy = tensors[f"{g}.{kind}"]
            assert xy.shape == (len(params), 2), (g, kind)
            assert torch.isfinite(xy).all()
        assert f"{g}.params_umap" not in tensors  # analysis.umap=false in the tiny run
    trajectory = tiny_run.load("generated.safetensors")[0]["trajectory"]
    assert tensors["trajectory.params_pca"].shape == (trajectory.shape[0], trajectory.shape[1], 2)


def test_params_pca_is_one_shared_space(tiny_run, analysis):
    """All groups are placed by one PCA: the coordinates over all models are centred and the
    first axis carries at least as much variance as the second."""
    tensors, meta = analysis
    xy = torch.cat([tensors[f"{g}.params_pca"] for g in meta["groups"]]).double()
    assert_close(xy.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-4, rtol=0)
    var = xy.var(0)
    assert var[0] >= var[1] > 0


def test_iou_matrix_is_symmetric_with_unit_diagonal(tiny_run, analysis):
    tensors, meta = analysis
    iou = tensors["iou"]
    total = sum(meta["sizes"])
    assert iou.shape == (total, total)
    assert_close(iou, iou.T)
    assert torch.equal(iou.diagonal(), torch.ones(total))
    assert iou.min() >= 0 and iou.max() <= 1
    # it is the IoU of the stored predictions, in group order
    evaluated = load_evaluation(tiny_run)
    pred, labels = evaluated.predictions, evaluated.labels
    stacked = torch.cat([pred[g] for g in meta["groups"]])
    assert_close(iou, metrics.wrong_sets_iou(stacked, labels))


def test_max_iou_to_zoo_excludes_self_for_the_zoo(tiny_run, analysis):
    tensors, meta = analysis
    k = meta["sizes"][0]
    zoo_block = tensors["iou"][:k, :k].clone()
    zoo_block.fill_diagonal_(-1)
    assert_close(tensors["zoo.max_iou"], zoo_block.max(1).values)
    assert (tensors["zoo.max_iou_index"] != torch.arange(k)).all()
    n_zoo = meta["sizes"][0]
    g = meta["groups"].index("generated")
    start, n_gen = sum(meta["sizes"][:g]), meta["sizes"][g]
    assert_close(tensors["generated.max_iou"], tensors["iou"][start:start + n_gen, :n_zoo].max(1).values)


def exact_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(Na, Nb) L2 distances from explicit differences in float64 (cdist's matmul form is not
    precise enough for checkpoints a few hundredths apart)."""
    return (a.double()[:, None] - b.double()[None]).norm(dim=-1)


def test_zoo_nearest_neighbour_excludes_self(tiny_run, analysis):
    tensors, _ = analysis
    zoo = model_groups(tiny_run)["zoo"].float()
    dist, index = tensors["zoo.nn_distance"], tensors["zoo.nn_index"]
    assert (dist > 0).all()  # with self excluded, no checkpoint is at distance 0 from itself
    assert (index != torch.arange(len(zoo))).all()
    d = exact_distances(zoo, zoo)
    d.fill_diagonal_(float("inf"))
    # exact: the float64 distance to the true nearest checkpoint, rounded once to the stored float32
    assert torch.equal(dist, d.min(1).values.float()) and torch.equal(index, d.argmin(1))
    gen = model_groups(tiny_run)["generated"].float()
    exact = exact_distances(gen, zoo)
    assert torch.equal(tensors["generated.nn_distance"], exact.min(1).values.float())
    assert torch.equal(tensors["generated.neighbours"], exact.topk(3, largest=False).indices)
    assert tensors["generated.neighbours"].shape == (len(gen), 3)
    assert torch.equal(tensors["generated.neighbours"][:, 0], tensors["generated.nn_index"])


def test_scorecard_has_every_group_with_consistent_numbers(tiny_run, analysis):
    tensors, meta = analysis
    card = meta["scorecard"]
    assert {"zoo", "fresh", "generated", "copies", "gaussian", "averaged-16", "noise-abs-0.01", "noise-rel-0.1",
            "ae-reconstruction", "decoder-only"} <= set(card)
    accuracy = load_evaluation(tiny_run).accuracy
    for g, row in card.items():
        summary = metrics.accuracy_summary(accuracy[g])
        assert row["n"] == summary["n"] and row["median"] == pytest.approx(summary["median"])
        lo, hi = row["mean_ci"]
        assert lo <= row["mean"] <= hi
        assert row["novelty_median"] == pytest.approx(1 - row["max_iou_median"])
        assert row["max_iou_median"] == pytest.approx(metrics.median(tensors[f"{g}.max_iou"]))
        assert row["max_iou_median_ci"][0] <= row["max_iou_median"] <= row["max_iou_median_ci"][1]
        assert row["nn_distance_median"] == pytest.approx(metrics.median(tensors[f"{g}.nn_distance"]))
        n = len(accuracy[g])
        start = sum(meta["sizes"][: meta["groups"].index(g)])
        block = tensors["iou"][start:start + n, start:start + n]
        assert row["iou_within"] == pytest.approx(((block.sum() - n) / (n * (n - 1))).item(), rel=1e-5)
        assert row["distinct_predictions"] == len({tuple(p.tolist()) for p in load_evaluation(tiny_run).predictions[g]})
        floor = torch.quantile(accuracy["zoo"].double(), 0.05).item() - 1  # the zoo's range: its 5th percentile - 1
        assert row["good"] == pytest.approx(100 * (accuracy[g] >= floor).double().mean().item())
        evaluated = load_evaluation(tiny_run)
        ensemble = (evaluated.mean_probs[g].argmax(1) == evaluated.labels).double().mean().item() * 100
        assert row["ensemble_gain"] == pytest.approx(ensemble - accuracy[g].double().mean().item())
        assert row["good_ci"][0] <= row["good"] <= row["good_ci"][1]
        assert row["iou_within_ci"][0] <= row["iou_within"] <= row["iou_within_ci"][1]
        labels = evaluated.labels
        assert row["test_samples"] == len(labels)
        assert row["errors_median"] == pytest.approx(metrics.median((evaluated.predictions[g] != labels).sum(1)))
        counts = torch.bincount(tensors[f"{g}.nn_index"][tensors[f"{g}.nn_index"] >= 0])
        assert row["nn_targets"] == int((counts > 0).sum())
        assert row["nn_top_share"] == pytest.approx(counts[row["nn_top"]].sum().item() / n)
        assert [c for c in sorted(counts.tolist(), reverse=True)[:3] if c] == counts[row["nn_top"]].tolist()


def test_missing_predictions_is_a_clear_run_error(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "no-predictions")
    tensors, meta = run.load("evaluation.safetensors")
    del tensors["generated.predictions"]
    run.save("evaluation.safetensors", tensors, meta)
    with pytest.raises(RunError, match=r"lacks predictions \(generated\).*--force evaluate") as info:
        run_stage(run, tiny_config(), "analyse", torch.device("cpu"))
    assert "\n" not in str(info.value)


def test_a_one_checkpoint_zoo_has_no_zoo_neighbour_but_everything_else_is_analysed(lone_zoo_run):
    tensors, meta = lone_zoo_run.load("analysis.safetensors")
    assert meta["sizes"][0] == 1
    assert torch.isnan(tensors["zoo.max_iou"]).all() and tensors["zoo.max_iou_index"].tolist() == [-1]
    assert torch.isnan(tensors["zoo.nn_distance"]).all() and torch.isnan(tensors["zoo.nn_agreement"]).all()
    assert tensors["zoo.neighbours"].shape == (1, 0)
    card = meta["scorecard"]
    assert card["zoo"]["max_iou_median"] is None and card["zoo"]["nn_distance_median"] is None
    # every generated model's nearest zoo model is the lone checkpoint, and its IoU is defined
    assert tensors["generated.max_iou_index"].eq(0).all() and not torch.isnan(tensors["generated.max_iou"]).any()
    assert card["generated"]["max_iou_median"] == pytest.approx(metrics.median(tensors["generated.max_iou"]))
    assert card["zoo"]["iou_within"] is None and card["zoo"]["max_iou_median_ci"] is None


def test_the_tiny_runs_generator_covers_its_training_latents(tiny_run):
    """A learning test of the whole generator: 300 denoiser steps on 40 checkpoints already give
    latents with the training latents' spread, inside their manifold and covering most of it
    (the 1D-conv denoiser of p-diff left a quarter of the spread here)."""
    card = tiny_run.load("analysis.safetensors")[1]["scorecard"]
    generated = card["generated"]
    assert 0.8 <= generated["latent_spread_ratio"] <= 1.25
    assert generated["latent_precision"] >= 0.8
    assert generated["latent_recall"] >= 0.7 * generated["latent_self_recall"]
    assert card["zoo"]["latent_fd"] is None and card["zoo"]["latent_fd_floor"] > 0  # the reference keeps its floor
    latents = tiny_run.load("generated.safetensors")[0]["latents"]
    from pdiff.judge import fidelity
    from pdiff.judge.analysis import group_fidelity

    zoo_latents = load_codec(tiny_run, tiny_config(), torch.device("cpu")).encode(
        model_groups(tiny_run)["zoo"])
    assert generated["latent_spread_ratio"] == pytest.approx(fidelity.spread_ratio(latents, zoo_latents))
    assert group_fidelity(zoo_latents, latents, "latent", 0) == {k: generated[k] for k in generated
                                                                  if k.startswith("latent_")}
