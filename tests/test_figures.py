"""The app's figure and table builders on synthetic arrays: trace counts, and the data drawn
equals the data given (no Streamlit involved)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import diagram, figures, projector, tables

RNG = np.random.default_rng(0)
GROUPS = {"zoo": 12, "generated": 7, "gaussian": 5}


def _acc() -> dict[str, np.ndarray]:
    return {g: RNG.uniform(60, 90, n) for g, n in GROUPS.items()}


def test_group_colours_are_stable_and_distinct():
    colours = figures.group_colours(["zoo", "generated", "a", "b"])
    assert colours["zoo"] == figures.FIXED_COLOURS["zoo"] and colours["generated"] == figures.FIXED_COLOURS["generated"]
    assert len(set(colours.values())) == 4
    assert figures.group_colours(["b", "a"])["b"] == colours["a"]  # order-based for baselines


def test_pipeline_diagram_one_box_per_stage():
    stages = [{"name": "collect", "status": "done", "seconds": 3.2}, {"name": "autoencoder", "status": "running",
              "progress": 0.5}, {"name": "diffusion", "status": "pending"}]
    fig = figures.pipeline_diagram(stages)
    assert len(fig.data) == 1 and list(fig.data[0].x) == [0, 1, 2]
    boxes = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(boxes) == 4  # three stages + the running stage's progress bar
    assert boxes[0].fillcolor == figures.STATUS_COLOURS["done"]
    assert "3.2 s" in fig.data[0].text[0] and "running 50%" in fig.data[0].text[1]
    assert len(fig.layout.annotations) == 2  # arrows between stages


def test_accuracy_histogram_shares_bins_centred_on_the_accuracy_grid():
    step = 100 / 540  # one test sample of 540
    acc = {"zoo": np.arange(520, 531) * step, "generated": np.array([525, 525, 526]) * step}
    fig = figures.accuracy_distributions(acc, "histogram", resolution=step)
    assert {t.histnorm for t in fig.data} == {"percent"}  # shares: groups of different sizes compare
    bins = {(t.xbins.start, t.xbins.size) for t in fig.data}
    assert len(bins) == 1  # one set of bins for every group
    start, size = bins.pop()
    assert size == pytest.approx(step) and start == pytest.approx(520 * step - step / 2)  # centred on the grid
    wide = figures.accuracy_distributions({"g": np.array([0.0, 100.0])}, "histogram", resolution=step)
    assert wide.data[0].xbins.size == pytest.approx(step * 5)  # at most 120 bins: a whole number of samples


@pytest.mark.parametrize("kind", ["violin", "histogram"])
def test_accuracy_distributions(kind):
    acc = _acc()
    fig = figures.accuracy_distributions(acc, kind, zoo_range=(acc["zoo"].min(), acc["zoo"].max()))
    assert [t.name for t in fig.data] == list(acc)
    for trace, values in zip(fig.data, acc.values()):
        np.testing.assert_array_equal(trace.y if kind == "violin" else trace.x, values)
    band = fig.layout.shapes[0]
    lo, hi = (band.y0, band.y1) if kind == "violin" else (band.x0, band.x1)
    assert (lo, hi) == (acc["zoo"].min(), acc["zoo"].max())


def test_compare_accuracy_one_trace_per_run():
    a, b = _acc(), _acc()
    fig = figures.compare_accuracy({"run-a": a, "run-b": b})
    assert [t.name for t in fig.data] == ["run-a", "run-b"]
    np.testing.assert_array_equal(fig.data[1].y, np.concatenate(list(b.values())))
    assert list(fig.data[0].x) == [g for g, n in GROUPS.items() for _ in range(n)]


@pytest.mark.parametrize("coloured", [False, True])
def test_projection_scatter(coloured):
    points = {g: RNG.normal(size=(n, 2)) for g, n in GROUPS.items()}
    acc = _acc()
    values = {g: RNG.uniform(0, 1, n) for g, n in GROUPS.items()} if coloured else None
    if coloured:
        values["gaussian"][[1, 3]] = np.nan  # models without the value are drawn grey
    marks = [("errs like", "errs like: zoo #4", [("zoo", 4)]),
             ("nearest", "3 nearest checkpoints (parameters)", [("zoo", 1), ("zoo", 5)])]
    fig = projector.projection_scatter(points, values, "max IoU", acc, ("generated", 3), [("generated", 3), ("zoo", 2)],
                                       marks, "PCA")
    traces = {t.name: t for t in fig.data}
    order = [t.name for t in fig.data]
    assert order.index("generated") > order.index("zoo") > order.index("gaussian")  # generated drawn on top
    for g, xy in points.items():  # every dot drawn, none taking hover (the pick trace does)
        drawn = [t for t in fig.data if t.name in (g, f"{g} (no value)")]
        assert sum(len(t.x) for t in drawn) == len(xy) and all(t.hoverinfo == "skip" for t in drawn)
    pick = traces[projector.PICK]
    assert pick.mode == "text" and not pick.showlegend  # no marker radius: hover goes to the nearest centre
    assert len(pick.x) == sum(GROUPS.values())
    custom = [tuple(c[:2]) for c in pick.customdata]
    row = custom.index(("zoo", 2))
    assert (pick.x[row], pick.y[row]) == tuple(points["zoo"][2]) and pick.customdata[row][2] == round(acc["zoo"][2], 4)
    np.testing.assert_array_equal(traces["errs like: zoo #4"].x, points["zoo"][[4], 0])
    assert traces["errs like: zoo #4"].marker.symbol == "diamond-open"  # the style follows the kind, not the order
    assert traces["3 nearest checkpoints (parameters)"].marker.symbol == "circle-open"
    np.testing.assert_array_equal(traces["3 nearest checkpoints (parameters)"].y, points["zoo"][[1, 5], 1])
    assert list(traces["selected"].x) == [points["generated"][3][0], points["zoo"][2][0]]
    assert (traces["in focus: generated #3"].x[0], traces["in focus: generated #3"].y[0]) == tuple(points["generated"][3])
    if coloured:
        np.testing.assert_array_equal(traces["zoo"].marker.color, values["zoo"])
        assert len(traces["gaussian (no value)"].x) == 2 and traces["gaussian (no value)"].marker.color == projector.NO_VALUE
        assert fig.layout.coloraxis.colorbar.title.text == "max IoU" and pick.customdata[row][3] is not None
        assert fig.layout.legend.y < 0 < fig.layout.coloraxis.colorbar.x  # legend below, colour bar at the right
    assert fig.layout.dragmode == "zoom" and fig.layout.clickmode == "event+select"
    assert fig.layout.legend.itemclick is False  # groups are shown or hidden by the page's picker only


def test_a_focus_outside_the_visible_groups_draws_no_star():
    fig = projector.projection_scatter({"zoo": RNG.normal(size=(4, 2))}, focus=("generated", 1))
    assert [t.name for t in fig.data] == ["zoo", projector.PICK]


def test_grid_roundtrip_and_weight_heatmaps():
    assert figures.grid_shape(394) == (20, 20) and figures.grid_shape(1) == (1, 1)
    vectors = RNG.normal(size=(4, 394))
    grid = figures.as_grid(vectors[0])
    np.testing.assert_array_equal(grid.reshape(-1)[:394], vectors[0])
    assert np.isnan(grid.reshape(-1)[394:]).all()
    fig = figures.weight_heatmaps(vectors, ["gen", "a", "b", "c"])
    assert len(fig.data) == 4
    for trace, v in zip(fig.data, vectors):
        np.testing.assert_array_equal(np.asarray(trace.z).reshape(-1)[:394], v)
        assert trace.zmin == -trace.zmax  # one diverging scale centred on 0
    assert [a.text for a in fig.layout.annotations] == ["gen", "a", "b", "c"]
    assert len({t.zmax for t in fig.data}) == 1  # one shared scale
    small = vectors.copy()
    small[3] *= 0.01  # a difference, much smaller than the models: blank on the shared scale
    fig = figures.weight_heatmaps(small, ["gen", "a", "b", "a - gen"], [False, False, False, True])
    assert fig.data[0].zmax == fig.data[1].zmax == fig.data[2].zmax > 10 * fig.data[3].zmax
    assert fig.layout.annotations[3].text.startswith("a - gen<br>(own scale ±")
    assert [t.showscale for t in fig.data] == [True, False, False, False]


def test_iou_heatmap_blocks():
    sizes = [3, 2, 4]
    iou = RNG.uniform(size=(9, 9))
    fig = figures.iou_heatmap(iou, ["zoo", "generated", "gaussian"], sizes)
    assert len(fig.data) == 1
    np.testing.assert_allclose(fig.data[0].z, iou, rtol=1e-6)  # sent as float32
    assert list(fig.layout.xaxis.ticktext) == ["zoo", "generated", "gaussian"]
    assert list(fig.layout.xaxis.tickvals) == [1.0, 3.5, 6.5]
    assert len(fig.layout.shapes) == 4  # two boundaries, each drawn across and down


def test_memorization_scatter_stacks_models_on_one_marker_and_draws_groups_in_order():
    iou = {"zoo": np.array([1.0, 1.0, 0.9, 1.0]), "generated": np.array([0.9, 0.9, 0.9, 0.8, 0.9]),
           "gaussian": np.array([0.5, 0.6])}
    acc = {"zoo": np.array([98.0, 98.0, 97.5, 98.0]), "generated": np.array([98.0, 98.0, 98.0, 97.0, 97.5]),
           "gaussian": np.array([90.0, 91.0])}
    fig = figures.memorization_scatter(iou, acc, zoo_range=(97.5, 98.0), resolution=0.5,
                                       selected=[("generated", 3)])
    assert [t.name for t in fig.data] == ["gaussian", "zoo", "generated", "pick", "selected"]  # generated on top
    assert [t.legendrank for t in fig.data[:3]] == [3, 1, 2]  # the legend keeps the given order
    gen, pick = fig.data[2], fig.data[3]
    # five models on three distinct points: (0.9, 98) x3, (0.8, 97), (0.9, 97.5)
    assert list(gen.x) == [0.9, 0.8, 0.9] and list(gen.y) == [98.0, 97.0, 97.5]
    assert gen.marker.size[0] > gen.marker.size[1] == gen.marker.size[2]  # the stack of three is larger
    assert gen.hoverinfo == "skip" and pick.mode == "text"  # clicks go to the nearest centre, not the largest marker
    stacks = {(c[0], c[3]): (x, y, c[2]) for x, y, c in zip(pick.x, pick.y, pick.customdata)}
    assert stacks[("generated", "0 1 2")] == (0.9, 98.0, 3) and stacks[("generated", "3")] == (0.8, 97.0, 1)
    assert ("zoo", "0 1 3") in stacks and len(stacks) == 2 + 2 + 3
    assert (fig.data[-1].x[0], fig.data[-1].y[0]) == (0.8, 97.0)  # the selected model's ring
    assert "0.5 points" in fig.layout.yaxis.title.text
    assert fig.layout.dragmode == "zoom"  # a click selects (with dragmode "select" it would not)
    density = figures.memorization_scatter(iou, acc, mode="density")
    assert {t.type for t in density.data} == {"histogram2dcontour", "scatter"}
    medians = {t.name: (t.x[0], t.y[0]) for t in density.data if t.type == "scatter"}
    assert medians["generated (median)"] == (0.9, 98.0)


def test_stack_points():
    stacks = figures.stack_points(np.array([1, 2, 1, 1]), np.array([5, 5, 5, 6]))
    assert stacks == [(1.0, 5.0, [0, 2]), (2.0, 5.0, [1]), (1.0, 6.0, [3])]


def test_nn_histograms():
    dist = {"generated": RNG.uniform(0, 2, 7), "zoo": RNG.uniform(0, 1, 12)}
    fig = figures.nn_histograms(dist)
    assert [t.name for t in fig.data] == ["generated -> zoo", "zoo -> zoo"]
    np.testing.assert_array_equal(fig.data[0].x, dist["generated"])
    assert fig.data[0].xbins.size == fig.data[1].xbins.size  # shared bins


def test_nearest_zoo_histogram_counts_models_per_checkpoint():
    fig = figures.nearest_zoo_histogram({"generated": np.array([3, 3, 5, 3, -1]), "gaussian": np.array([0])}, 8)
    bars = {t.name: dict(zip(t.x, t.y)) for t in fig.data}
    assert bars["generated"] == {3: 3, 5: 1} and bars["gaussian"] == {0: 1}  # index -1 (no neighbour) ignored
    assert tuple(fig.layout.xaxis.range) == (-0.5, 7.5)


def test_loss_curves_and_reconstruction_scatter():
    curves = {"collect: classifier 1/1": (np.arange(5), np.array([2.0, 1.0, 0.5, 0.0, 0.2])),
              "autoencoder": (np.arange(3), np.array([1.0, 0.1, 0.01]))}
    fig = figures.loss_curves(curves)
    assert len(fig.data) == 2 and [a.text for a in fig.layout.annotations] == list(curves)
    np.testing.assert_array_equal(fig.data[0].y, [2.0, 1.0, 0.5, 0.2])  # a zero loss cannot go on a log axis
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "log"
    before, after = RNG.normal(size=10), RNG.normal(size=10)
    fig = figures.reconstruction_scatter(before, after, [("w", 0, 6), ("b", 6, 10)])
    assert [t.name for t in fig.data] == ["w", "b", "perfect reconstruction"]
    np.testing.assert_array_equal(fig.data[1].x, before[6:])
    np.testing.assert_array_equal(fig.data[1].y, after[6:])


def test_trajectory_figures():
    steps = np.array([99, 60, 30, 0])
    acc = RNG.uniform(10, 90, size=(4, 3))
    fig = figures.trajectory_accuracy(steps, acc, current=2, zoo_range=(60, 70),
                                      references={"decoding pure noise (median)": 55.0})
    assert len(fig.data) == 3
    np.testing.assert_array_equal(fig.data[1].y, acc[:, 1])
    assert fig.layout.shapes[0].x0 == 30
    assert fig.layout.shapes[-1].y0 == fig.layout.shapes[-1].y1 == 55.0
    assert any(a.text == "decoding pure noise (median)" for a in fig.layout.annotations)
    path = RNG.normal(size=(4, 3, 2))
    background = {"zoo": RNG.normal(size=(12, 2)), "generated": RNG.normal(size=(7, 2))}
    fig = figures.trajectory_projection(background, path, current=2, steps=steps)
    assert len(fig.data) == 2 + 3 + 1
    np.testing.assert_array_equal(fig.data[2].x, path[:3, 0, 0])  # sample 0's path up to the current step
    np.testing.assert_array_equal(fig.data[-1].x, path[2, :, 0])
    assert fig.data[-1].name == "x0 at t=30"


def test_noising_figure():
    x0, xt = RNG.normal(size=50), RNG.normal(size=50)
    snr = np.logspace(3, -3, 100)
    fig = figures.noising_figure(x0, xt, 10, snr, [("w", 0, 30), ("b", 30, 50)])
    assert len(fig.data) == 4
    np.testing.assert_array_equal(fig.data[0].y, x0)
    np.testing.assert_array_equal(fig.data[1].y, xt)
    np.testing.assert_array_equal(fig.data[2].y, snr)
    assert (fig.data[3].x[0], fig.data[3].y[0]) == (10, snr[10])


def test_scorecard_frame_keeps_numbers():
    card = {"zoo": {"n": 5, "best": 90.0, "mean": 80.0, "median": 81.5, "min": 70.0, "std": 3.0,
                    "mean_ci": [78.0, 82.0], "median_ci": [79.0, 84.0], "max_iou_median": 0.8},
            "generated": {"n": 3, "best": 91.0, "mean": 85.0, "median": 86.0, "min": 80.0, "std": 2.0}}
    frame = tables.scorecard_frame(card)
    assert list(frame.index) == ["zoo", "generated"]
    assert frame.loc["zoo", "median"] == 81.5 and frame.loc["zoo", "max IoU (median)"] == 0.8
    assert pd.isna(frame.loc["generated", "max IoU (median)"])
    acc = tables.scorecard_frame(card, tables.ACCURACY)
    assert acc.loc["zoo", "mean 95% CI"] == "78.00 – 82.00" and acc.loc["generated", "mean 95% CI"] == "-"


def test_config_tables():
    a = {"seed": 0, "sample": {"num_models": 10, "sampler": "ddpm"}, "autoencoder": {"channels": (8, 16)}}
    b = {"seed": 0, "sample": {"num_models": 20, "sampler": "ddpm"}, "autoencoder": {"channels": [8, 16]}}
    assert tables.flat_config(a)["sample.num_models"] == 10
    frame = tables.config_frame(a, b)
    assert frame.set_index("key")["changed"].to_dict() == {"seed": False, "sample.num_models": True,
                                                          "sample.sampler": False, "autoencoder.channels": False}
    diff = tables.config_diff(a, b)
    assert diff.to_dict("records") == [{"key": "sample.num_models", "A": "10", "B": "20"}]


def test_stage_frame():
    frame = tables.stage_frame([{"name": "collect", "status": "done", "seconds": 75.0, "metrics": {"dim": 394}},
                                {"name": "autoencoder", "status": "failed", "error": "ValueError: x"}])
    assert frame["time"].tolist() == ["1 min 15 s", ""]
    assert frame["metrics"].tolist() == ["dim=394", "ValueError: x"]
    assert "expected" not in frame

    from pdiff.pipeline.estimate import Estimate

    frame = tables.stage_frame([{"name": "autoencoder", "status": "running", "seconds": 10.0},
                                {"name": "diffusion", "status": "pending"}],
                               {"autoencoder": Estimate(30.0, "from its progress"),
                                "diffusion": Estimate(90.0, "another run, same settings")})
    assert frame["expected"].tolist() == ["~30.0 s left (from its progress)", "~1 min 30 s (another run, same settings)"]


def test_evidence_difference_and_selection_frames():
    card = {"zoo": {"n": 4, "median": 98.0, "median_ci": [97.5, 98.5], "max_iou_median": 1.0,
                    "max_iou_median_ci": [1.0, 1.0], "distinct_predictions": 3, "nn_top_share": 0.5},
            "generated": {"n": 5, "median": 97.25, "median_ci": [97.0, 97.5], "max_iou_median": None,
                          "distinct_predictions": 1}}
    frame = tables.evidence_frame(card)
    assert list(frame.index) == ["generated", "zoo"]  # the generated models first
    assert frame.loc["zoo", "median acc. %"] == "98.00 [97.50, 98.50]"
    assert frame.loc["zoo", "max IoU"] == "1.000 [1.000, 1.000]" and frame.loc["generated", "max IoU"] == "–"
    assert frame.loc["generated", "distinct"] == "1 of 5" and frame.loc["zoo", "top-3 NN"] == "50%"

    from pdiff.judge.comparison import compare_rows

    diffs = compare_rows({"median": 90.0, "median_ci": [89.0, 91.0], "distinct_predictions": 3},
                         {"median": 92.0, "median_ci": [91.5, 92.5], "distinct_predictions": 5})
    table = tables.difference_frame({"b": diffs, "c": diffs}, "a", {"b": True, "c": False})
    assert table.columns.tolist() == ["metric", "a", "b", "b: B − A", "b: 95% CI", "b: change",
                                      "c", "c: B − A", "c: 95% CI"]  # c measures something else: no verdict on it
    row = table.set_index("metric").loc["median accuracy (%)"]
    assert (row["a"], row["b"], row["b: B − A"], row["b: change"]) == ("90.00", "92.00", "+2.00", "real change")
    lo, hi = 2 - np.hypot(0.5, 1.0), 2 + np.hypot(0.5, 1.0)
    assert row["b: 95% CI"] == f"[{lo:+.2f}, {hi:+.2f}]"
    distinct = table.set_index("metric").loc["distinct prediction vectors"]
    assert distinct["b: 95% CI"] == "–" and distinct["b: change"] == "–"

    selected = tables.selection_frame([("generated", 1), ("zoo", 0)], {"generated": [90, 91], "zoo": [92]},
                                      {"generated": [0.5, 0.6], "zoo": [0.9]}, {"generated": [0, 3], "zoo": [-1]},
                                      {"generated": [1.0, 2.0], "zoo": [0.0]})
    assert selected["model"].tolist() == ["generated #1", "zoo #0"]
    assert selected["nearest zoo model"].tolist() == ["zoo #3", "–"]


def test_histograms_are_one_panel_per_group_on_a_shared_axis():
    """Six overlaid groups hid the zoo and the generated models: one panel each."""
    acc = {g: RNG.uniform(95, 99, 20) for g in ("zoo", "fresh", "generated", "copies", "gaussian", "averaged-16")}
    fig = figures.accuracy_distributions(acc, "histogram", (95.5, 98.5), 100 / 540)
    assert [t.name for t in fig.data] == list(acc)
    assert [t.xaxis for t in fig.data] == ["x", "x2", "x3", "x4", "x5", "x6"]
    assert fig.layout.xaxis2.matches == "x6" or fig.layout.xaxis.matches == "x6"  # one shared accuracy axis
    assert [a.text for a in fig.layout.annotations][:6] == list(acc)


def test_ruler_figure_marks_the_position_the_verdict_read():
    places = {"generated": {"parameters": {"position": 0.4, "ci": [0.34, 0.43]}},
              "copies": {"parameters": {"position": 0.0, "ci": [-0.05, 0.05]}}}
    fig = figures.ruler_figure(places, ["parameters"], (0.4, 0.8, 1.25), ["generated", "copies"],
                               decided=("parameters", 0.4, "between"))
    gen = next(t for t in fig.data if t.name == "generated")
    assert list(gen.x) == [0.4] and list(gen.error_x.arrayminus) == pytest.approx([0.06])
    note = next(a for a in fig.layout.annotations if a.text.startswith("answer:"))
    assert (note.x, note.y, note.text) == (0.4, "parameters", "answer: between")


def test_overlap_figure_and_frames():
    fig = figures.overlap_figure({"same": 3, "different": 1, "only_a": 2, "only_b": 0}, ("generated #1", "zoo #4"))
    assert [t.x[0] for t in fig.data] == [3, 1, 2, 0] and fig.layout.barmode == "stack"
    assert fig.data[2].name == "only generated #1 wrong: 2"
    import torch

    from pdiff.judge.neighbours import wrong_overlap

    labels = torch.tensor([0, 1, 2, 3])
    overlap = wrong_overlap(torch.tensor([1, 1, 0, 3]), torch.tensor([1, 2, 2, 0]), labels)
    frame = tables.overlap_frame(overlap, [1, 1, 0, 3], [1, 2, 2, 0], labels.tolist(), ("a", "b"))
    assert frame["test sample"].tolist() == [0, 2, 1, 3]
    assert frame["wrong by"].tolist() == ["both", "only a", "only b", "only b"]
    assert frame.loc[0, "a says"] == 1 and frame.loc[0, "true class"] == 0
    near = tables.neighbour_frame(("generated", 0), [("errs like (max IoU)", ("zoo", 1))], {"generated": [90.0],
                                  "zoo": [91.0, 92.0]}, [0.8], [1.5], [0.2], "predictions")
    assert near["role"].tolist() == ["in focus", "errs like (max IoU)"]
    assert near.loc[1, "IoU with it"] == 0.8 and near.loc[1, "distance (predictions)"] == 0.2
    values = {"accuracy": {"zoo": np.array([90.0, 91.0]), "generated": np.array([92.0])},
              "max_iou": {"zoo": np.array([1.0, np.nan]), "generated": np.array([0.5])}}
    models = tables.model_frame(values, ["generated", "zoo"])
    assert models["model"].tolist() == ["generated #0", "zoo #0", "zoo #1"] and models["index"].tolist() == [0, 0, 1]
    assert pd.isna(models.loc[2, "max_iou"]) and models.loc[0, "accuracy"] == 92.0


def test_dataflow_diagram_writes_the_runs_sizes():
    from pdiff.pipeline.anatomy import Anatomy

    sizes = Anatomy("digits", (1, 8, 8), 10, {"train": 1131, "validation": 126, "test": 540}, "cnn", 5_322,
                    (("bn2.weight", 32), ("bn2.bias", 32), ("head.weight", 320), ("head.bias", 10)), 200, 0, 100,
                    "centred on the zoo's mean, one spread", "mlp", 16, 1000, "mlp", "ddpm", 1000, 100)
    fig = diagram.dataflow_diagram(sizes)
    text = " ".join(a.text for a in fig.layout.annotations if a.text)
    assert "200 checkpoints<br>× 394 numbers" in text and "394 → 16" in text and "16 → 394" in text
    assert "+ frozen backbone 4,928" in text and "generated: 394 (7.4%)<br>frozen: 4,928" in text
    assert "540 test samples" in text and "t = 999 → 0" in text
    assert len([s for s in fig.layout.shapes if s.type == "rect"]) == len(diagram.boxes(sizes)) == 9
