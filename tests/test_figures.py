"""The app's figure and table builders on synthetic arrays: trace counts, and the data drawn
equals the data given (no Streamlit involved)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import figures, tables

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


@pytest.mark.parametrize("colour_by", ["group", "accuracy"])
def test_projection_scatter(colour_by):
    points = {g: RNG.normal(size=(n, 2)) for g, n in GROUPS.items()}
    acc, iou = _acc(), {g: RNG.uniform(0, 1, n) for g, n in GROUPS.items()}
    fig = figures.projection_scatter(points, acc, iou, colour_by, selected=("generated", 3), neighbours=[1, 4, 5])
    assert len(fig.data) == len(GROUPS) + 2
    assert [t.name for t in fig.data[:3]] == ["gaussian", "zoo", "generated"]  # generated drawn on top
    assert [t.legendrank for t in fig.data[:3]] == [3, 1, 2]  # legend keeps the given order
    traces = {t.name: t for t in fig.data}
    for g, xy in points.items():
        trace = traces[g]
        np.testing.assert_array_equal(trace.x, xy[:, 0])
        np.testing.assert_array_equal(trace.y, xy[:, 1])
        assert trace.customdata[2][0] == g and trace.customdata[2][1] == 2
        assert trace.customdata[2][2] == pytest.approx(acc[g][2]) and trace.customdata[2][3] == pytest.approx(iou[g][2])
    np.testing.assert_array_equal(fig.data[-2].x, points["zoo"][[1, 4, 5], 0])
    assert (fig.data[-1].x[0], fig.data[-1].y[0]) == tuple(points["generated"][3])
    if colour_by == "accuracy":
        np.testing.assert_array_equal(traces["zoo"].marker.color, acc["zoo"])


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


def test_iou_heatmap_blocks():
    sizes = [3, 2, 4]
    iou = RNG.uniform(size=(9, 9))
    fig = figures.iou_heatmap(iou, ["zoo", "generated", "gaussian"], sizes)
    assert len(fig.data) == 1
    np.testing.assert_allclose(fig.data[0].z, iou, rtol=1e-6)  # sent as float32
    assert list(fig.layout.xaxis.ticktext) == ["zoo", "generated", "gaussian"]
    assert list(fig.layout.xaxis.tickvals) == [1.0, 3.5, 6.5]
    assert len(fig.layout.shapes) == 4  # two boundaries, each drawn across and down


def test_memorization_scatter_and_nn_histograms():
    acc, iou = _acc(), {g: RNG.uniform(0, 1, n) for g, n in GROUPS.items()}
    fig = figures.memorization_scatter(iou, acc, zoo_range=(60, 70))
    assert [t.name for t in fig.data] == list(GROUPS)
    np.testing.assert_array_equal(fig.data[1].x, iou["generated"])
    np.testing.assert_array_equal(fig.data[1].y, acc["generated"])
    dist = {"generated": RNG.uniform(0, 2, 7), "zoo": RNG.uniform(0, 1, 12)}
    fig = figures.nn_histograms(dist)
    assert [t.name for t in fig.data] == ["generated -> zoo", "zoo -> zoo"]
    np.testing.assert_array_equal(fig.data[0].x, dist["generated"])
    assert fig.data[0].xbins.size == fig.data[1].xbins.size  # shared bins


def test_trajectory_figures():
    steps = np.array([99, 60, 30, 0])
    acc = RNG.uniform(10, 90, size=(4, 3))
    fig = figures.trajectory_accuracy(steps, acc, current=2, zoo_range=(60, 70))
    assert len(fig.data) == 3
    np.testing.assert_array_equal(fig.data[1].y, acc[:, 1])
    assert fig.layout.shapes[0].x0 == 30
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
    assert tables.flatten_config(a)["sample.num_models"] == 10
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
