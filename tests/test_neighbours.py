"""One model's neighbours in a chosen space, the models it errs like, the wrong samples two models
share (pdiff.judge.neighbours); every model's own values (pdiff.judge.catalogue); the latents a
reader gets (pdiff.pipeline.latents) and a run's sizes (pdiff.pipeline.anatomy), checked against
what the analysis stored."""
from __future__ import annotations

import math

import pytest
import torch

from pdiff.core.artifacts import ANALYSIS, BASE
from pdiff.judge import catalogue, ruler
from pdiff.judge import neighbours as near
from pdiff.judge.projection import fit_projection
from pdiff.pipeline.anatomy import anatomy
from pdiff.pipeline.latents import model_latents
from pdiff.pipeline.loaders import model_groups
from pdiff.pipeline.runner import load_run_config


def test_nearest_in_parameters_is_exact_l2_nearest_first():
    ref = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0], [0.0, 1.0]])
    found = near.nearest("parameters", torch.tensor([0.0, 0.0]), ref, 3)
    assert [(n.index, n.distance) for n in found] == [(0, 0.0), (2, 1.0), (3, 1.0)]  # ties: lower index first
    found = near.nearest("latents", torch.tensor([0.0, 0.0]), ref, 2, exclude=0)  # the model itself is skipped
    assert [n.index for n in found] == [2, 3] and found[0].distance == 1.0


def test_nearest_keeps_float64_precision_at_copy_distances():
    """Copies live at tiny distances from large vectors, where the matmul expansion loses them."""
    base = torch.full((50,), 1000.0, dtype=torch.float64)
    ref = torch.stack([base + 1e-4 * k for k in range(1, 6)])
    found = near.nearest("parameters", base, ref, 5)
    assert [n.index for n in found] == [0, 1, 2, 3, 4]
    assert found[0].distance == pytest.approx(1e-4 * math.sqrt(50), rel=1e-9)


def test_nearest_by_predictions_ranks_by_iou():
    iou = torch.tensor([0.5, 1.0, 0.8, 1.0])
    found = near.nearest("predictions", iou, torch.zeros(0), 3, exclude=3)
    assert [n.index for n in found] == [1, 2, 0] and found[0].distance == 0.0
    assert found[1].distance == pytest.approx(0.2)
    with pytest.raises(ValueError, match="space must be one of"):
        near.nearest("weights", iou, torch.zeros(0), 1)


def test_errs_like_uses_the_stored_checkpoint_and_finds_the_fresh_twin():
    errs = near.errs_like(7, 0.9, torch.tensor([0.2, 0.95, 0.95]))
    assert (errs.checkpoint, errs.checkpoint_iou, errs.fresh) == (7, 0.9, 1)  # the first maximum
    assert errs.fresh_iou == pytest.approx(0.95)
    assert near.errs_like(7, 0.9, torch.tensor([0.99, 0.5]), exclude_fresh=0).fresh == 1  # a fresh model: not itself
    assert near.errs_like(3, 1.0).fresh is None


def test_wrong_overlap_splits_the_wrong_samples_and_its_iou_is_the_metric():
    from pdiff.judge.metrics import wrong_sets_iou

    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    a = torch.tensor([0, 9, 9, 3, 8, 5])  # wrong on 1, 2, 4
    b = torch.tensor([7, 9, 8, 3, 4, 5])  # wrong on 0, 1, 2
    overlap = near.wrong_overlap(a, b, labels)
    assert overlap.both.tolist() == [1, 2] and overlap.only_a.tolist() == [4] and overlap.only_b.tolist() == [0]
    assert overlap.same_answer.tolist() == [True, False]
    assert overlap.iou == pytest.approx(wrong_sets_iou(a[None], labels, b[None])[0, 0].item())
    assert near.wrong_overlap(labels, labels, labels).iou == 1.0  # neither errs: IoU 1 by convention
    with pytest.raises(ValueError, match="same samples"):
        near.wrong_overlap(a, b[:3], labels)


def test_per_model_values():
    accuracy = {"zoo": torch.tensor([90.0, 91.0, 92.0]), "generated": torch.tensor([89.0, 93.0])}
    analysis = {"zoo.max_iou": torch.tensor([0.9, 1.0, 0.9]), "zoo.max_iou_index": torch.tensor([1, 0, 1]),
                "zoo.nn_distance": torch.tensor([0.1, 0.1, 0.2]), "zoo.nn_index": torch.tensor([1, 0, 1]),
                "generated.max_iou": torch.tensor([0.8, 1.0]), "generated.max_iou_index": torch.tensor([2, 0]),
                "generated.nn_distance": torch.tensor([0.5, 1.0]), "generated.nn_index": torch.tensor([2, -1])}
    axes = {"behaviour": {"resolves": False, "copies": 1.0, "fresh": 0.9},
            "parameters": {"resolves": True, "copies": 0.05, "fresh": 1.0}}
    values = catalogue.per_model(accuracy, analysis, {"zoo": torch.tensor([10, 20, 30])}, axes)
    assert set(values) == set(catalogue.COLUMNS) == set(catalogue.LABELS)
    assert values["novelty"]["generated"].tolist() == pytest.approx([0.2, 0.0])
    assert values["errs_like"]["generated"].tolist() == [2.0, 0.0]
    assert values["step"]["zoo"].tolist() == [10.0, 20.0, 30.0] and math.isnan(values["step"]["generated"][0])
    assert values["nearest_step"]["generated"][0] == 30.0 and math.isnan(values["nearest_step"]["generated"][1])
    assert math.isnan(values["nearest"]["generated"][1])  # -1: no neighbour
    assert all(math.isnan(v) for v in values["ruler_behaviour"]["zoo"].tolist())  # behaviour does not resolve here
    axis = ruler.Axis("parameters", 0.05, 1.0, (0.04, 0.06), (0.9, 1.1), True)
    assert values["ruler_parameters"]["generated"][0] == pytest.approx(ruler.position("parameters", 0.5, axis))


# --------------------------------------------------------------------------- on a real run


def test_model_latents_are_the_latents_the_analysis_mapped(tiny_run):
    """pipeline.latents mirrors the analyse stage: the PCA of its latents is the stored latent map."""
    config = load_run_config(tiny_run)
    latents = model_latents(tiny_run, config, torch.device("cpu"))
    tensors, meta = tiny_run.load(ANALYSIS)
    assert list(latents) == meta["groups"]
    projected = fit_projection(latents, "pca")
    for g in meta["groups"]:
        torch.testing.assert_close(projected[g].float(), tensors[f"{g}.latent_pca"].float(), atol=1e-4, rtol=1e-4)


def test_anatomy_counts_the_generated_and_the_frozen_parameters(tiny_run):
    config = load_run_config(tiny_run)
    sizes = anatomy(tiny_run, config)
    base, _ = tiny_run.load(BASE)
    params = [v for k, v in base.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert sizes.total_params == sum(p.numel() for p in params)
    assert sizes.target_params == model_groups(tiny_run)["zoo"].shape[1] == 394  # last BN + head of the small CNN
    assert [name for name, _ in sizes.target] == ["bn2.weight", "bn2.bias", "head.weight", "head.bias"]
    assert sizes.frozen_params == sizes.total_params - 394 > 0
    assert sizes.zoo == config.collect.num_checkpoints and sizes.generated == config.sample.num_models
    assert sizes.sampling_steps == config.diffusion.timesteps and sizes.splits["test"] == 540


def test_teaching_numbers():
    import numpy as np

    from pdiff.judge import teaching

    steps, acc = np.array([99, 50, 0]), np.array([[90.0, 92.0], [94.0, 96.0], [97.0, 97.0]])
    numbers = teaching.trajectory(steps, acc, np.array([96.0, 98.0, 97.0]), np.array([95.0, 93.0]), 540)
    assert (numbers.t_max, numbers.first, numbers.last, numbers.zoo, numbers.noise) == (99, 91.0, 97.0, 97.0, 94.0)
    assert numbers.step == pytest.approx(100 / 540) and teaching.mean_at(acc, 1) == 95.0
    assert teaching.step_index(steps, 50) == 1 and teaching.step_index(steps, 48) == 1
    change = teaching.reconstruction(np.array([97.0, 98.0]), np.array([96.5, 98.5]), 0)
    assert change.change == pytest.approx(-0.5) and change.zoo_median == 97.5 and change.reconstructed_median == 97.5
