"""The Streamlit explorer under `streamlit.testing.v1.AppTest`: every page renders against a tiny
finished run and shows the numbers that are in the run's files; no runs (automatic start on and
off), a damaged run and a partial run give messages, not tracebacks; the New run form validates;
background runs launch, are found again, and cancel into a resumable state.
"""
from __future__ import annotations

import base64
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from app_fixtures import REPO, TINY_OVERRIDES, app_run, clone_run  # noqa: F401
from streamlit.testing.v1 import AppTest

from app import launcher
from pdiff.core.rundir import RunDir, read_json, write_json

MAIN = str(REPO / "app" / "main.py")
CHARTS = {"overview": 1, "accuracy": 1, "similarity": 5, "latent": 3, "autoencoder": 3, "denoising": 4, "glossary": 0,
          "new_run": 0, "compare": 0, "guided": 0, "pipeline": 1, "training": 2}


# --------------------------------------------------------------------------- helpers


def open_app(monkeypatch, root: Path, autostart: bool = False, run: str | None = None) -> AppTest:
    monkeypatch.setenv("PDIFF_RUNS", str(root))
    monkeypatch.setenv("PDIFF_AUTOSTART", "1" if autostart else "0")
    at = AppTest.from_file(MAIN, default_timeout=120)
    if run is not None:
        at.query_params["run"] = run
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def show(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"views/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def decode(values) -> np.ndarray:
    """A plotly array as sent to the browser (plain list or base64 typed array)."""
    if isinstance(values, dict) and "bdata" in values:
        out = np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
        shape = values.get("shape")
        if isinstance(shape, str):
            shape = [int(n) for n in shape.split(",")]
        return out.reshape(shape) if shape else out
    return np.asarray(values)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def arrows_follow_signs(at: AppTest) -> None:
    """Every metric's arrow is the sign of the difference its delta shows (none for a zero)."""
    from streamlit.proto.Metric_pb2 import Metric

    for m in at.metric:
        if not m.proto.delta:
            continue
        number = float(m.proto.delta.split()[0].replace("−", "-"))
        expected = Metric.MetricDirection.UP if number > 0 else Metric.MetricDirection.DOWN if number < 0 \
            else Metric.MetricDirection.NONE
        assert m.proto.direction == expected, (m.label, m.proto.delta, m.proto.direction)


def frame(at: AppTest, *columns: str):
    """The first dataframe on the page that has all these columns (dataframes carry no key)."""
    frames = [d.value for d in at.dataframe]
    return next(f for f in frames if set(columns) <= set(f.columns))


@pytest.fixture()
def root(app_run, tmp_path):  # noqa: F811
    """A runs root holding a private copy of the tiny run."""
    clone_run(app_run, tmp_path, "tiny")
    return tmp_path


@pytest.fixture()
def no_launch(monkeypatch):
    """Record launches instead of starting processes."""
    calls = []
    monkeypatch.setattr(launcher, "launch", lambda path, preset="digits", overrides=None: calls.append(
        (Path(path), preset, dict(overrides or {}))) or 12345)
    return calls


def _card(run: Path) -> dict:
    return RunDir(run).load("analysis.safetensors")[1]["scorecard"]


def _ruler(run: Path) -> dict:
    return RunDir(run).load("analysis.safetensors")[1]["ruler"]


# --------------------------------------------------------------------------- every page


@pytest.mark.parametrize("page", list(CHARTS))
def test_page_renders(monkeypatch, root, page):
    at = show(open_app(monkeypatch, root), page)
    assert not at.error, [e.value for e in at.error]
    assert len(at.title) == 1
    assert len(at.get("plotly_chart")) >= CHARTS[page]
    assert at.sidebar.selectbox(key="run").value == "tiny"


def test_overview_shows_the_scorecard(monkeypatch, root):
    at = show(open_app(monkeypatch, root), "overview")
    card = _card(root / "tiny")
    shown = metrics(at)
    assert shown["Zoo median accuracy"] == f"{card['zoo']['median']:.2f}%"
    assert shown["Generated median accuracy"] == f"{card['generated']['median']:.2f}%"
    gen = card["generated"]
    assert shown["Generated: distinct predictions"] == f"{gen['distinct_predictions']} of {gen['n']}"
    delta = next(m for m in at.metric if m.label == "Generated: distinct predictions").proto.delta
    assert delta.startswith(f"{gen['distinct_predictions'] - gen['zoo_distinct_same_n']:+.0f}".replace("-", "−")
                            .replace("+0", "0"))
    arrows_follow_signs(at)
    table = frame(at, "median acc. %", "ensemble gain")  # one table of every group, not two
    assert list(table.index)[:2] == ["generated", "zoo"] and set(table.index) == set(card)
    assert table.loc["zoo", "ensemble gain"] == f"{card['zoo']['ensemble_gain']:+.2f}"
    assert not any({"max IoU (median)", "best"} <= set(d.value.columns) for d in at.dataframe)
    config = frame(at, "key", "value", "changed").set_index("key")["value"].to_dict()
    assert json.loads(config["collect.num_checkpoints"]) == TINY_OVERRIDES["collect.num_checkpoints"]
    diagram = next(c for c in charts(at) if "text" in c["data"][0])  # after the ruler
    assert [t.split("<br>")[1] for t in diagram["data"][0]["text"]] == ["done"] * 8


def test_fidelity_tables_equal_the_runs_scorecard(monkeypatch, root):
    """Overview's fidelity table and Latent space's panel (both spaces) show the analysis' numbers."""
    card = _card(root / "tiny")
    at = show(open_app(monkeypatch, root), "overview")
    table = frame(at, "spread ratio", "recall of zoo halves")
    assert list(table.index) == ["generated", "ae-reconstruction", "decoder-only"]
    assert table.loc["generated", "spread ratio"] == pytest.approx(card["generated"]["latent_spread_ratio"])
    assert table.loc["generated", "recall"] == pytest.approx(card["generated"]["latent_recall"])
    at = show(at, "latent")
    panel = frame(at, "spread ratio", "FD of zoo halves")
    assert "zoo" not in panel.index and "generated" in panel.index
    assert panel.loc["gaussian", "Fréchet distance"] == pytest.approx(card["gaussian"]["latent_fd"])
    at.radio(key="lat_fidelity_space").set_value("parameters").run()
    panel = frame(at, "spread ratio", "FD of zoo halves")
    assert panel.loc["generated", "precision"] == pytest.approx(card["generated"]["param_precision"])
    spread = next(c for c in charts(at) if c["layout"].get("yaxis", {}).get("type") == "log")
    assert [t["name"] for t in spread["data"]][:2] == ["zoo", "generated"]


def test_the_verdict_shown_is_the_one_computed_from_the_runs_files(monkeypatch, root):
    from pdiff.judge.verdict import verdict, zone

    at = show(open_app(monkeypatch, root), "overview")
    card, ruler = _card(root / "tiny"), _ruler(root / "tiny")  # straight from analysis.safetensors
    expected = verdict(card, ruler)
    texts = [m.value for m in at.markdown]
    assert expected.headline in texts
    for item in expected.evidence:  # each line, with its numbers and intervals
        head, _, rest = item.text.partition(": ")
        assert any(t.endswith(f"**{head}:** {rest}") for t in texts), item.text
    assert [c.value for c in at.caption if c.value.startswith(":material/warning:")] == [
        f":material/warning: {c}" for c in expected.caveats]
    gen, zoo = card["generated"], card["zoo"]
    aspects = {e.aspect: e.text for e in expected.evidence}
    assert f"{zoo['median']:.2f}%" in aspects["accuracy"]
    assert f"make {gen['distinct_predictions']} different sets" in aspects["diversity"]
    assert at.get("plotly_chart")  # the ruler
    notes = [a for c in charts(at) for a in c["layout"].get("annotations", []) if a.get("text", "").startswith("answer:")]
    if expected.position is None:
        assert notes == []
    else:  # the figure marks the very number the words were read from
        ruler_chart = next(c for c in charts(at) if any(t.get("name") == "generated" and t.get("error_x")
                                                        for t in c["data"]))
        gen_trace = next(t for t in ruler_chart["data"] if t.get("name") == "generated")
        xs = dict(zip(gen_trace["y"], decode(gen_trace["x"]).tolist()))
        assert [(n["x"], n["y"], n["text"]) for n in notes] == [(expected.position, expected.decided_by,
                                                                 f"answer: {expected.answer}")]
        assert xs[expected.decided_by] == pytest.approx(expected.position)
        assert zone(xs[expected.decided_by]) == expected.answer
    evidence = frame(at, "median acc. %", "max IoU", "distinct")
    assert list(evidence.index)[:2] == ["generated", "zoo"]
    lo, hi = gen["median_ci"]
    assert evidence.loc["generated", "median acc. %"] == f"{gen['median']:.2f} [{lo:.2f}, {hi:.2f}]"
    lo, hi = gen["max_iou_median_ci"]
    assert evidence.loc["generated", "max IoU"] == f"{gen['max_iou_median']:.3f} [{lo:.3f}, {hi:.3f}]"
    assert evidence.loc["zoo", "distinct"] == f"{zoo['distinct_predictions']} of {zoo['n']}"


def test_accuracy_page_numbers(monkeypatch, root):
    at = show(open_app(monkeypatch, root), "accuracy")
    card = _card(root / "tiny")
    table = frame(at, "mean 95% CI")
    assert table.loc["generated", "median"] == pytest.approx(card["generated"]["median"])
    lo, hi = card["zoo"]["mean_ci"]
    assert table.loc["zoo", "mean 95% CI"] == f"{lo:.2f} – {hi:.2f}"
    evaluation, _ = RunDir(root / "tiny").load("evaluation.safetensors")
    violins = {t["name"]: decode(t["y"]) for t in charts(at)[0]["data"]}
    np.testing.assert_allclose(violins["generated"], evaluation["generated.accuracy"].numpy())
    at.radio(key="acc_kind").set_value("histogram").run()
    assert not at.exception
    assert {t["type"] for t in charts(at)[0]["data"]} == {"histogram"}


def _select(at: AppTest, key: str, *points: list) -> AppTest:
    """What the browser sends after a click (one point) or a box/lasso (several): their customdata."""
    at.session_state[key] = {"selection": {"points": [{"customdata": c} for c in points],
                                           "point_indices": list(range(len(points))), "box": [], "lasso": []}}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _pick(chart: dict) -> dict:
    return next(t for t in chart["data"] if t.get("name") == "pick")


def test_latent_page_neighbours_and_projection(monkeypatch, root):
    at = show(open_app(monkeypatch, root), "latent")
    tensors, meta = RunDir(root / "tiny").load("analysis.safetensors")
    evaluation, _ = RunDir(root / "tiny").load("evaluation.safetensors")
    pick = _pick(charts(at)[0])
    custom = [tuple(c[:2]) for c in pick["customdata"]]
    assert len(custom) == sum(meta["sizes"])  # every model of the groups shown can be clicked
    row = custom.index(("zoo", 5))
    assert decode(pick["x"])[row] == pytest.approx(tensors["zoo.params_pca"][5, 0].item(), rel=1e-6)
    assert charts(at)[0]["layout"]["dragmode"] == "zoom"  # so that a click selects
    # it opens on the generated model most like a training checkpoint
    iou = tensors["generated.max_iou"].numpy()
    index = at.selectbox(key="lat_pick_index").value
    assert at.selectbox(key="lat_pick_group").value == "generated" and iou[index] == iou.max()
    assert at.query_params["model"] in (f"generated:{index}", [f"generated:{index}"])
    table = frame(at, "IoU with it", "role")
    errs = int(tensors["generated.max_iou_index"][index])
    assert table["role"].tolist()[:2] == ["in focus", "errs like (max IoU)"]
    assert table["model"].tolist()[1] == f"zoo #{errs}"
    assert table["IoU with it"][1] == pytest.approx(iou[index], rel=1e-6)  # the analysis' own number
    nearest = [m for r, m in zip(table["role"], table["model"]) if r.startswith("nearest")]
    assert nearest == [f"zoo #{j}" for j in tensors["generated.neighbours"][index].tolist()]  # = the analysis' L2 nn
    expected = [evaluation["generated.accuracy"][index].item()]
    np.testing.assert_allclose(table["accuracy (%)"][0], expected, rtol=1e-6)
    assert any(m.value.startswith("**Errs like.** generated #") and f"zoo #{errs} with IoU {iou[index]:.3f}" in m.value
               for m in at.markdown)
    titles = charts(at)[1]["layout"]["annotations"]
    assert titles[1]["text"].startswith(f"errs like (max IoU)<br>zoo #{errs}:")

    at.slider(key="lat_k").set_value(5).run()
    assert sum(r.startswith("nearest") for r in frame(at, "IoU with it", "role")["role"]) == 5
    at.radio(key="lat_space").set_value("predictions").run()
    table = frame(at, "IoU with it", "distance (predictions)")
    rows = table[table["role"].str.startswith("nearest")]
    np.testing.assert_allclose(rows["distance (predictions)"], 1 - rows["IoU with it"], atol=1e-6)
    assert rows["IoU with it"].tolist() == sorted(rows["IoU with it"], reverse=True)
    at.radio(key="lat_space").set_value("latents").run()
    assert "distance (latents)" in frame(at, "IoU with it", "role").columns
    marks = [t["name"] for t in charts(at)[0]["data"]]
    assert f"errs like: zoo #{errs}" in marks and "5 nearest checkpoints (latents)" in marks

    # a click on a zoo point in the chart puts that model in focus, here and in the address
    _select(at, "lat_chart", ["zoo", 3, 0.0, 0.0])
    assert (at.selectbox(key="lat_pick_group").value, at.selectbox(key="lat_pick_index").value) == ("zoo", 3)
    assert frame(at, "IoU with it", "role")["model"].tolist()[0] == "zoo #3"
    assert at.query_params["model"] in ("zoo:3", ["zoo:3"])
    star = next(t for t in charts(at)[0]["data"] if t["name"].startswith("in focus"))
    assert star["name"] == "in focus: zoo #3"
    # a box around several: the generated models lead, every picked model is listed and ringed
    _select(at, "lat_chart", ["zoo", 5, 0.0, 0.0], ["generated", 2, 0.0, 0.0], ["generated", 7, 0.0, 0.0])
    assert (at.selectbox(key="lat_pick_group").value, at.selectbox(key="lat_pick_index").value) == ("generated", 2)
    picked = frame(at, "nearest zoo model")
    assert picked["model"].tolist() == ["generated #2", "generated #7", "zoo #5"]
    nn = tensors["generated.nn_index"][7].item()
    assert picked.set_index("model").loc["generated #7", "nearest zoo model"] == f"zoo #{nn}"
    assert len(decode(next(t for t in charts(at)[0]["data"] if t["name"] == "selected")["x"])) == 3

    # search by id, a clear word for an id that is not there
    at.text_input(key="lat_find").set_value("gen 4").run()
    assert (at.selectbox(key="lat_pick_group").value, at.selectbox(key="lat_pick_index").value) == ("generated", 4)
    at.text_input(key="lat_find").set_value("nothing 99").run()
    assert any("No model 'nothing 99'" in c.value for c in at.caption)
    assert at.selectbox(key="lat_pick_index").value == 4

    # colour by any per-model value
    from pdiff.judge.catalogue import COLUMNS, LABELS

    for column in COLUMNS:
        at.selectbox(key="lat_colour").set_value(column).run()
        assert not at.exception and not at.error, column
        assert charts(at)[0]["layout"]["coloraxis"]["colorbar"]["title"]["text"] == LABELS[column]
    at.radio(key="lat_space_map").set_value("latents").run()
    assert not at.exception and not at.error
    scatter = {t["name"]: t for t in charts(at)[0]["data"]}
    np.testing.assert_allclose(decode(scatter["zoo"]["y"]), tensors["zoo.latent_pca"][:, 1].numpy(), rtol=1e-6)
    landing = next(c for c in charts(at) if c["data"] and c["data"][0]["type"] == "bar")
    counts = np.bincount(tensors["generated.nn_index"].numpy(), minlength=meta["sizes"][0])
    bars = dict(zip(decode(landing["data"][0]["x"]).tolist(), decode(landing["data"][0]["y"]).tolist()))
    assert bars == {i: int(c) for i, c in enumerate(counts) if c}


def test_the_model_table_selects_on_click_and_the_focus_follows_to_similarity(monkeypatch, root):
    at = show(open_app(monkeypatch, root), "latent")
    table = frame(at, "model", "max IoU", "errs like zoo #")
    assert len(table) == sum(RunDir(root / "tiny").load("analysis.safetensors")[1]["sizes"])
    at.text_input(key="lat_table_filter").set_value("fresh").run()
    table = frame(at, "model", "max IoU", "errs like zoo #")
    assert set(table["group"]) == {"fresh"}
    at.session_state["lat_table"] = {"selection": {"rows": [4], "columns": [], "cells": []}}
    at.run()
    assert (at.selectbox(key="lat_pick_group").value, at.selectbox(key="lat_pick_index").value) == ("fresh", 4)
    at = show(at, "similarity")  # the model in focus is the same on the next page
    assert (at.selectbox(key="sim_pick_group").value, at.selectbox(key="sim_pick_index").value) == ("fresh", 4)
    ring = next(t for t in charts(at)[0]["data"] if t["name"] == "selected")
    tensors, _ = RunDir(root / "tiny").load("analysis.safetensors")
    assert decode(ring["x"])[0] == pytest.approx(tensors["fresh.max_iou"][4].item(), rel=1e-6)


def test_a_link_with_a_model_opens_on_it(monkeypatch, root):
    monkeypatch.setenv("PDIFF_RUNS", str(root))
    monkeypatch.setenv("PDIFF_AUTOSTART", "0")
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.query_params["run"] = "tiny"
    at.query_params["model"] = "copies:2"
    at.run()
    at = show(at, "latent")
    assert (at.selectbox(key="lat_pick_group").value, at.selectbox(key="lat_pick_index").value) == ("copies", 2)
    at.query_params["model"] = "copies:999"  # not a model of this run: the page opens on its default
    at2 = AppTest.from_file(MAIN, default_timeout=120)
    at2.query_params["run"] = "tiny"
    at2.query_params["model"] = "copies:999"
    at2.run()
    at2 = show(at2, "latent")
    assert at2.selectbox(key="lat_pick_group").value == "generated" and not at2.error


def test_the_download_exports_the_model_in_focus_at_its_recorded_accuracy(monkeypatch, root):
    """The Download button hands over what pdiff.export writes; loaded into the classifier, it scores
    what the run recorded."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    from pdiff.pipeline.runner import load_run_config
    from pdiff.zoo.classifiers import build_classifier
    from pdiff.zoo.datasets import load_dataset

    deferred = []
    original = MediaFileManager.add_deferred
    monkeypatch.setattr(MediaFileManager, "add_deferred",
                        lambda self, fn, *a, **k: deferred.append((fn, k.get("file_name"))) or original(self, fn, *a, **k))
    at = _select(show(open_app(monkeypatch, root), "latent"), "lat_chart", ["generated", 4, 0.0, 0.0])
    assert at.get("download_button")[0].label == "Download classifier"
    fn, name = deferred[-1]
    assert name == "tiny-generated-4.safetensors"
    from safetensors.torch import load

    run = RunDir(root / "tiny")
    config = load_run_config(run)
    dataset = load_dataset(config.data)
    net = build_classifier(config.classifier.arch, dataset.input_shape, dataset.num_classes).eval()
    net.load_state_dict(load(fn()))
    import torch

    with torch.no_grad():
        accuracy = (net(dataset.x_test).argmax(1) == dataset.y_test).double().mean().item() * 100
    evaluation, _ = run.load("evaluation.safetensors")
    assert accuracy == pytest.approx(evaluation["generated.accuracy"][4].item(), abs=1e-4)


def test_similarity_page_numbers(monkeypatch, root):
    at = show(open_app(monkeypatch, root), "similarity")
    card = _card(root / "tiny")
    shown = metrics(at)
    assert shown["generated: median max IoU to zoo"] == f"{card['generated']['max_iou_median']:.3f}"
    assert shown["zoo: median max IoU to zoo"] == f"{card['zoo']['max_iou_median']:.3f}"
    tensors, meta = RunDir(root / "tiny").load("analysis.safetensors")
    evaluation, _ = RunDir(root / "tiny").load("evaluation.safetensors")
    scatter, _weights, overlap_chart, hist, heatmap = charts(at)
    z = np.asarray(heatmap["data"][0]["z"], dtype=float) if isinstance(heatmap["data"][0]["z"], list) \
        else decode(heatmap["data"][0]["z"])
    cap = at.slider(key="sim_cap").value
    first = tensors["iou"][:min(cap, meta["sizes"][0]), :min(cap, meta["sizes"][0])].numpy()
    np.testing.assert_allclose(z[: len(first), : len(first)], first, rtol=1e-6)
    # the memorization plot: every generated model is in exactly one marker, at its (max IoU, accuracy)
    pick = _pick(scatter)
    gen = [(x, y, c) for x, y, c in zip(decode(pick["x"]), decode(pick["y"]), pick["customdata"]) if c[0] == "generated"]
    iou, acc = tensors["generated.max_iou"].numpy(), evaluation["generated.accuracy"].numpy()
    members = [[int(i) for i in c[3].split()] for _, _, c in gen]
    assert sorted(i for m in members for i in m) == list(range(len(iou)))
    for (x, y, _), m in zip(gen, members):
        np.testing.assert_allclose(iou[m], x, rtol=1e-6)
        np.testing.assert_allclose(acc[m], y, rtol=1e-6)
    assert [t["name"] for t in scatter["data"]][-3:] == ["generated", "pick", "selected"]  # over zoo and baselines
    names = [t["name"] for t in hist["data"]]
    assert names == ["generated -> zoo", "zoo -> zoo"]
    np.testing.assert_allclose(decode(hist["data"][0]["x"]), tensors["generated.nn_distance"].numpy())
    # the model in focus by default: the generated model most like a training checkpoint
    index = at.selectbox(key="sim_pick_index").value
    assert iou[index] == iou.max()
    # its shared mistakes with the checkpoint it errs like: the counts are the predictions'
    predictions, labels = evaluation["generated.predictions"][index], evaluation["labels"]
    errs = int(tensors["generated.max_iou_index"][index])
    other = evaluation["zoo.predictions"][errs]
    both = ((predictions != labels) & (other != labels)).sum().item()
    same = ((predictions != labels) & (other == predictions)).sum().item()
    bars = [decode(t["x"])[0] for t in overlap_chart["data"]]
    assert bars == [same, both - same, ((predictions != labels) & (other == labels)).sum().item(),
                    ((predictions == labels) & (other != labels)).sum().item()]
    shared = frame(at, "test sample", "wrong by")
    assert (shared["wrong by"] == "both").sum() == both
    assert any(f"IoU of the two sets of wrong test samples: {iou[index]:.3f}" in c.value for c in at.caption)
    at.selectbox(key="sim_partner").set_value(at.selectbox(key="sim_partner").options[1]).run()  # the fresh twin
    assert not at.exception and not at.error
    # clicking a stacked marker selects every model in it
    stack = max((c for _, _, c in gen), key=lambda c: c[2])
    _select(at, "sim_scatter", stack)
    listed = [int(i) for i in stack[3].split()]
    if len(listed) > 1:
        assert frame(at, "nearest zoo model")["model"].tolist() == [f"generated #{i}" for i in listed]
    assert at.selectbox(key="sim_pick_index").value == listed[0]
    arrows_follow_signs(at)
    at.radio(key="sim_scatter_mode").set_value("density").run()
    assert not at.exception and not at.error


def test_denoising_page(monkeypatch, root):
    at = show(open_app(monkeypatch, root), "denoising")
    evaluation, _ = RunDir(root / "tiny").load("evaluation.safetensors")
    generated, _ = RunDir(root / "tiny").load("generated.safetensors")
    acc, steps = evaluation["trajectory.accuracy"].numpy(), evaluation["trajectory.steps"].tolist()
    assert metrics(at)["final mean accuracy (t=0)"] == f"{acc[-1].mean():.2f}%"
    assert at.select_slider(key="den_step").value == steps[0]  # the page opens at pure noise
    assert metrics(at)["decoding pure noise (median)"] == f"{np.median(evaluation['decoder-only.accuracy']):.2f}%"
    story = next(m.value for m in at.markdown if m.value.startswith("**What to expect.**"))
    assert f"scores {acc[0].mean():.2f}% on average" in story
    for step in (steps[0], steps[len(steps) // 2]):
        at.select_slider(key="den_step").set_value(step).run()
        current = steps.index(step)
        assert metrics(at)[f"mean accuracy of x0 at t={step}"] == f"{acc[current].mean():.2f}%"
        assert metrics(at)[f"generated #0: accuracy of x0 at t={step}"] == f"{acc[current, 0]:.2f}%"
        picture = next(c for c in charts(at) if c["data"][0]["type"] == "heatmap")
        from app.figures import as_grid
        from pdiff.generator.normalizer import Normalizer

        ae, _ = RunDir(root / "tiny").load("autoencoder.safetensors")
        normalizer = Normalizer.from_state({"mean": ae["normalizer.mean"], "std": ae["normalizer.std"]})
        x0 = normalizer.normalize(generated["trajectory"][current, 0][None].double())[0].numpy()
        np.testing.assert_allclose(decode(picture["data"][0]["z"]), as_grid(x0), rtol=1e-4, atol=1e-5)

    from pdiff.generator.diffusion import GaussianDiffusion

    at.slider(key="den_t").set_value(50).run()
    assert not at.exception and not at.error
    abar = GaussianDiffusion(TINY_OVERRIDES["diffusion.timesteps"]).alphas_cumprod.double()[50].item()
    assert metrics(at)["SNR at t"] == f"{abar / (1 - abar):.3g}"
    noise_fig = charts(at)[-1]
    x0, xt = decode(noise_fig["data"][0]["y"]), decode(noise_fig["data"][1]["y"])
    # x_t = sqrt(abar) x0 + sqrt(1 - abar) eps with eps from a generator seeded 0
    import torch

    eps = torch.randn(len(x0), generator=torch.Generator().manual_seed(0)).numpy()
    np.testing.assert_allclose(xt, np.sqrt(abar) * x0 + np.sqrt(1 - abar) * eps, rtol=1e-4, atol=1e-5)


def test_autoencoder_page_before_and_after(monkeypatch, root):
    at = show(open_app(monkeypatch, root), "autoencoder")
    evaluation, _ = RunDir(root / "tiny").load("evaluation.safetensors")
    at.number_input(key="ae_index").set_value(7).run()
    assert not at.exception and not at.error
    before, after = evaluation["zoo.accuracy"][7].item(), evaluation["ae-reconstruction.accuracy"][7].item()
    text = next(m.value for m in at.markdown if m.value.startswith("zoo #7:"))
    assert f"**{before:.2f}%** before, **{after:.2f}%** after" in text
    heatmaps = next(c for c in charts(at) if c["data"][0]["type"] == "heatmap")
    assert [a["text"] for a in heatmaps["layout"]["annotations"]][:2] == [f"before: zoo #7 ({before:.2f}%)",
                                                                          f"after ({after:.2f}%)"]


def test_compare_page(monkeypatch, root):
    from pdiff.judge.comparison import mover

    other = clone_run(root / "tiny", root, "tiny-seed1")
    manifest = read_json(other / "run.json")
    manifest["config"]["data"]["root"] = "elsewhere"  # read by no stage: the copy stays current
    write_json(other / "run.json", manifest)
    tensors, meta = RunDir(other).load("analysis.safetensors")  # run B's generated models: 1 point better
    gen = meta["scorecard"]["generated"]
    gen["median"] += 1.0
    gen["median_ci"] = [gen["median_ci"][0] + 0.5, gen["median_ci"][1] + 1.5]
    gen["max_iou_median"] -= 0.05
    RunDir(other).save("analysis.safetensors", tensors, meta)
    at = show(open_app(monkeypatch, root, run="tiny"), "compare")
    assert not at.error
    at.selectbox(key="cmp_a").set_value("tiny").run()
    at.multiselect(key="cmp_b").set_value(["tiny-seed1"]).run()
    assert at.selectbox(key="cmp_group").value == "generated"
    assert not at.warning  # the same dataset, target, classifier and sizes
    diff = frame(at, "key", "tiny", "tiny-seed1")
    assert diff.to_dict("records") == [{"key": "data.root", "tiny": '"data"', "tiny-seed1": '"elsewhere"'}]
    violins = next(c for c in charts(at) if c["data"] and c["data"][0]["type"] == "violin")
    assert [t["name"] for t in violins["data"]] == ["tiny", "tiny-seed1"]
    a, b = _card(root / "tiny")["generated"], gen
    table = frame(at, "metric", "tiny-seed1: B − A").set_index("metric")
    row = table.loc["median accuracy (%)"]
    assert (row["tiny"], row["tiny-seed1"]) == (f"{a['median']:.2f}", f"{b['median']:.2f}")
    assert row["tiny-seed1: B − A"] == "+1.00"
    lo, hi = mover(a["median"], a["median_ci"], b["median"], b["median_ci"])
    assert row["tiny-seed1: 95% CI"] == f"[{lo:+.2f}, {hi:+.2f}]"
    assert row["tiny-seed1: change"] == ("real change" if lo > 0 or hi < 0 else "within noise")
    assert table.loc["max IoU to the zoo (median)", "tiny-seed1: B − A"] == \
        f"{b['max_iou_median'] - a['max_iou_median']:+.3f}"
    assert table.loc["mean accuracy (%)", "tiny-seed1: B − A"] == "+0.00"  # unchanged
    assert table.loc["mean accuracy (%)", "tiny-seed1: change"] == "within noise"
    for metric in ("good models (%)", "novelty (median)", "NN distance to the zoo (median)", "IoU within the group"):
        assert table.loc[metric, "tiny-seed1: 95% CI"].startswith("["), metric  # every headline number has one
    at.selectbox(key="cmp_group").set_value("zoo").run()
    assert frame(at, "metric", "tiny-seed1: B − A").set_index("metric").loc["median accuracy (%)",
                                                                            "tiny-seed1: B − A"] == "+0.00"


def test_compare_refuses_to_judge_runs_that_measure_different_things(monkeypatch, root):
    """Another dataset or zoo size: a notice, the numbers side by side, and no "real change"; three runs."""
    small = clone_run(root / "tiny", root, "small-zoo")
    tensors, meta = RunDir(small).load("analysis.safetensors")
    meta["scorecard"]["zoo"]["n"] = 5  # as if its zoo had 5 checkpoints
    meta["scorecard"]["generated"]["median"] += 10.87
    RunDir(small).save("analysis.safetensors", tensors, meta)
    clone_run(root / "tiny", root, "twin")
    at = show(open_app(monkeypatch, root, run="tiny"), "compare")
    at.selectbox(key="cmp_a").set_value("tiny").run()
    at.multiselect(key="cmp_b").set_value(["small-zoo", "twin"]).run()
    assert not at.exception and not at.error
    notices = [w.value for w in at.warning]
    assert len(notices) == 1 and "**tiny** and **small-zoo** do not measure the same thing" in notices[0]
    assert "training checkpoints in the zoo: 20 vs 5" in notices[0]
    table = frame(at, "metric", "small-zoo: B − A")
    assert "small-zoo: change" not in table.columns and "twin: change" in table.columns  # twin is comparable
    assert table.set_index("metric").loc["median accuracy (%)", "small-zoo: B − A"] == "+10.87"
    ruler = next(c for c in charts(at) if any(t.get("error_x") for t in c["data"]))
    assert {t["name"] for t in ruler["data"] if t.get("error_x")} <= {"tiny", "small-zoo", "twin"}
    violins = next(c for c in charts(at) if c["data"] and c["data"][0]["type"] == "violin")
    assert [t["name"] for t in violins["data"]] == ["tiny", "small-zoo", "twin"]


# --------------------------------------------------------------------------- new run form


def test_new_run_rejects_invalid_values(monkeypatch, root, no_launch):
    at = show(open_app(monkeypatch, root), "new_run")
    at.number_input(key="new_sample.num_models_digits").set_value(0)
    at.button[0].click()  # the form's submit button
    at.run()
    assert not at.exception
    assert any("sample.num_models" in e.value and "must be > 0" in e.value for e in at.error)
    at.number_input(key="new_sample.num_models_digits").set_value(5)
    at.text_area(key="new_extra_digits").set_value("autoencoder.nope=3")
    at.button[0].click()
    at.run()
    assert any("unknown config key 'autoencoder.nope'" in e.value for e in at.error)
    at.text_area(key="new_extra_digits").set_value("")
    at.text_input(key="new_name_digits").set_value("../outside")
    at.button[0].click()
    at.run()
    assert any("not a folder directly under the runs root" in e.value for e in at.error)
    assert no_launch == []


def test_new_run_launches_with_overrides(monkeypatch, root, no_launch):
    at = show(open_app(monkeypatch, root), "new_run")
    at.number_input(key="new_sample.num_models_digits").set_value(12)
    at.selectbox(key="new_sampler_digits").set_value("ddim")
    at.text_area(key="new_extra_digits").set_value("classifier.epochs=2")
    at.text_input(key="new_name_digits").set_value("mine")
    at.button[0].click()
    at.run()
    assert not at.exception and not at.error
    assert no_launch == [(root.resolve() / "mine", "digits",
                          {"sample.num_models": 12, "sample.sampler": "ddim", "classifier.epochs": 2})]


# --------------------------------------------------------------------------- no runs, bad runs


def test_no_runs_with_autostart_off_explains(monkeypatch, tmp_path, no_launch):
    at = open_app(monkeypatch, tmp_path / "empty", autostart=False)
    assert not at.error and no_launch == []
    assert any("No runs under" in i.value and "python -m pdiff run --out" in i.value for i in at.info)
    assert at.sidebar.toggle(key="autostart").value is False
    for page in ("accuracy", "latent", "compare"):
        show(at, page)
    at.button(key="start_default").click().run()
    assert no_launch and no_launch[0][0] == (tmp_path / "empty").resolve() / "digits"


def test_no_runs_with_autostart_on_starts_the_default_run(monkeypatch, tmp_path, no_launch):
    at = open_app(monkeypatch, tmp_path, autostart=True)
    assert not at.exception
    assert [c[0] for c in no_launch] == [tmp_path.resolve() / "digits"]
    assert no_launch[0][1:] == ("digits", {})


def test_damaged_run_shows_error_and_others_work(monkeypatch, root):
    broken = clone_run(root / "tiny", root, "broken")
    data = (broken / "analysis.safetensors").read_bytes()
    (broken / "analysis.safetensors").write_bytes(data[: len(data) // 2])
    (broken / "evaluation.safetensors").write_bytes(b"\x00\x01")
    at = open_app(monkeypatch, root, run="broken")
    assert at.sidebar.selectbox(key="run").value == "broken"
    for page in ("overview", "accuracy", "latent", "similarity", "denoising"):
        show(at, page)
        messages = [e.value for e in at.error]
        assert any("damaged" in m for m in messages), (page, messages)
    at.sidebar.selectbox(key="run").set_value("tiny").run()
    for page in ("overview", "latent"):
        show(at, page)
        assert not at.error


def test_damaged_manifest(monkeypatch, root):
    broken = clone_run(root / "tiny", root, "broken")
    (broken / "run.json").write_text("{not json")
    at = open_app(monkeypatch, root, run="broken")
    for page in ("overview", "accuracy", "denoising", "compare"):
        show(at, page)
    assert any("run.json is damaged" in e.value for e in at.error)


def test_partial_run_says_what_is_missing(monkeypatch, root):
    partial = clone_run(root / "tiny", root, "partial")
    (partial / "analysis.safetensors").unlink()
    manifest = read_json(partial / "run.json")
    manifest["stages"]["analyse"] = manifest["stages"]["dynamics"] = {"status": "pending"}
    manifest["stages"]["evaluate"] = {"status": "running", "started": time.time()}  # killed mid-stage
    write_json(partial / "run.json", manifest)
    (partial / "evaluation.safetensors").unlink()
    at = open_app(monkeypatch, root, run="partial")
    assert any("stopped after 5/8 stages" in c.value for c in at.sidebar.caption)
    diagram = charts(at)[0]
    assert [t.split("<br>")[1] for t in diagram["data"][0]["text"]][-3:] == ["stopped", "pending", "pending"]
    show(at, "accuracy")
    assert any("the **evaluate** stage was interrupted" in i.value for i in at.info)
    # the hint is the command that resumes this run with its own stored config
    assert any(f"`python -m pdiff run --out {partial.resolve()}`: on an existing run it resumes with the run's "
               f"stored config" in i.value for i in at.info)
    for page in ("latent", "similarity"):
        show(at, page)
        assert not at.error
        assert any("the **analyse** stage has not run yet" in i.value for i in at.info), page


def test_watching_a_run_shows_live_loss_curves_and_time_estimates(monkeypatch, root):
    """A run in its autoencoder stage (progress.json as the pipeline writes it, a live pid): the Overview
    draws the losses so far and says how long each stage will take (the finished tiny run is the reference)."""
    from pdiff.pipeline.runner import ThrottledProgress

    live = clone_run(root / "tiny", root, "live")
    manifest = read_json(live / "run.json")
    started = time.time() - 30
    manifest["stages"]["autoencoder"] = {"status": "running", "started": started}
    for stage in ("diffusion", "sample", "baselines", "evaluate", "analyse"):
        manifest["stages"][stage] = {"status": "pending"}
    write_json(live / "run.json", manifest)
    progress = ThrottledProgress(RunDir(live), interval=0.0)
    for step in range(1, 4):
        progress("collect", step, 3, {"phase": "classifier 1/1", "loss": 2.0 / step})
    for step in range(1, 11):
        progress("autoencoder", step, 30, {"loss": 1.0 / step})
    history = read_json(live / "progress.json")
    history["history"]["autoencoder"]["started"] = started
    write_json(live / "progress.json", history)
    monkeypatch.setattr(launcher, "active_pid", lambda path: 4242 if Path(path).name == "live" else None)

    at = show(open_app(monkeypatch, root, run="live"), "overview")
    assert at.sidebar.button(key="cancel")
    curves = next(c for c in charts(at) if len(c["data"]) == 2 and c["data"][0].get("mode") == "lines")
    assert [a["text"] for a in curves["layout"]["annotations"]] == ["collect: classifier 1/1", "autoencoder"]
    np.testing.assert_allclose(decode(curves["data"][1]["y"]), [1.0 / s for s in range(1, 11)], rtol=1e-6)
    stages = frame(at, "stage", "expected").set_index("stage")["expected"]
    # 10 of 30 steps in 30 s (and the second or so the test took): 60 s to go
    assert stages["autoencoder"].startswith("~1 min 0") and stages["autoencoder"].endswith("left (from its progress)")
    seconds = read_json(root / "tiny" / "run.json")["stages"]["diffusion"]["seconds"]
    assert stages["diffusion"] == f"~{figures_format(seconds)} (another run, same settings)"
    assert stages["collect"] == ""  # done: its time is in the time column


def figures_format(seconds: float) -> str:
    from app.figures import format_seconds

    return format_seconds(seconds)


def test_a_one_checkpoint_zoo_renders_every_page(monkeypatch, tmp_path, lone_zoo_run):
    """K = 1: the zoo has no neighbour of its own, so its similarity numbers show as a dash."""
    clone_run(lone_zoo_run.path, tmp_path, "lone")
    at = open_app(monkeypatch, tmp_path, run="lone")
    for page in CHARTS:
        show(at, page)
        assert not at.error, (page, [e.value for e in at.error])
    show(at, "similarity")
    assert metrics(at)["zoo: median max IoU to zoo"] == "–"


def test_run_outside_root_is_refused(monkeypatch, root):
    at = open_app(monkeypatch, root, run="../etc")
    assert any("not a folder directly under the runs root" in w.value for w in at.sidebar.warning)
    assert at.sidebar.selectbox(key="run").value == "tiny"


# --------------------------------------------------------------------------- background runs


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_launch_and_resume_commands(app_run, tmp_path):  # noqa: F811
    """A new run: preset plus --set; a resume: only --out, so the CLI reads the stored config."""
    from app_fixtures import tiny_config

    from pdiff import cli
    from pdiff.core.config import parse_set, with_overrides
    from pdiff.core.presets import preset

    cmd = launcher.command(Path("/runs/x"), "digits", {"sample.num_models": 7, "autoencoder.channels": (8, 16)})
    assert cmd[1:8] == ["-m", "pdiff", "run", "--out", "/runs/x", "--preset", "digits"]
    sets = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--set"]
    config = with_overrides(preset("digits"), parse_set(sets))  # what the CLI will parse
    assert config.sample.num_models == 7 and config.autoencoder.channels == (8, 16)
    assert launcher.command(Path("/runs/x"), None) == [sys.executable, "-m", "pdiff", "run", "--out", "/runs/x",
                                                      "--quiet"]
    args = cli._parser().parse_args(launcher.command(app_run, None)[3:])
    assert cli._config_from_args(args, RunDir(app_run)) == tiny_config()  # the stored config, exactly
    assert launcher.active_pid(Path("/nonexistent/run")) is None


def test_launch_is_found_again_and_cancels_resumably(monkeypatch, tmp_path):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    overrides = dict(TINY_OVERRIDES, **{"collect.num_checkpoints": 2000, "collect.steps_per_checkpoint": 5,
                                        "classifier.epochs": 30})  # a collect that outlasts the page runs
    path = tmp_path / "bg"
    # Launched with SIGINT ignored, as from any background job of a non-interactive shell (CI
    # scripts, nohup ... &): the child inherits that, so Cancel must not rely on SIGINT.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        pid = launcher.launch(path, "digits", overrides)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        assert RunDir(path).exists()  # the manifest is there at once: the run is listed
        assert launcher.active_pid(path) == pid
        _wait(lambda: (RunDir(path).progress() or {}).get("stage") == "collect", 60, "collect progress")
        launcher._children.clear()  # a page reload or a new server: only the pid file is left
        assert launcher.active_pid(path) == pid

        at = open_app(monkeypatch, tmp_path, run="bg")
        assert at.sidebar.button(key="cancel")  # the live panel with its Cancel button
        assert any("collect" in c.value for c in at.sidebar.caption)
        show(at, "accuracy")
        assert any("waiting for the **evaluate** stage; the run is at **collect**" in i.value for i in at.info)
        at.sidebar.button(key="cancel").click().run()
        assert not at.exception
        _wait(lambda: launcher.active_pid(path) is None, 20, "the process to stop")
        assert RunDir(path).stage("collect")["status"] == "interrupted"
        assert "finished stages are kept" in launcher.log_tail(path)  # the run stopped itself, not killed
        at.run()
        assert at.sidebar.button(key="resume")
        with pytest.raises(Exception, match="already exists"):
            launcher.launch(path, "digits", {})
    finally:
        if launcher.active_pid(path) is not None:
            os.killpg(pid, 9)


@pytest.mark.slow
def test_launched_run_finishes_and_fills_the_pages(monkeypatch, tmp_path):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    path = tmp_path / "bg"
    launcher.launch(path, "digits", TINY_OVERRIDES)
    _wait(lambda: launcher.active_pid(path) is None, 300, "the run to finish")
    assert all(RunDir(path).stage_done(s) for s in ("collect", "analyse")), launcher.log_tail(path)
    at = open_app(monkeypatch, tmp_path, run="bg")
    for page in ("overview", "latent", "denoising"):
        show(at, page)
        assert not at.error


# --------------------------------------------------------------------------- teaching


def test_the_pipeline_page_says_what_is_generated_and_what_is_frozen(monkeypatch, root):
    from pdiff.pipeline.anatomy import anatomy
    from pdiff.pipeline.runner import load_run_config

    at = show(open_app(monkeypatch, root), "pipeline")
    run = RunDir(root / "tiny")
    sizes = anatomy(run, load_run_config(run))
    text = next(m.value for m in at.markdown if m.value.startswith("**Only part of the classifier is generated.**"))
    assert f"the generator makes {sizes.target_params:,}" in text and f"The other {sizes.frozen_params:,}" in text
    assert "`bn2.weight` (32)" in text and "`head.weight` (320)" in text
    notes = " ".join(a["text"] for a in charts(at)[0]["layout"]["annotations"] if a.get("text"))
    assert f"{sizes.zoo} checkpoints" in notes and f"frozen backbone {sizes.frozen_params:,}" in notes
    words = " ".join(m.value for m in at.markdown)
    for term in ("autoencoder", "latent", "diffusion", "x0-prediction", "timestep", "guidance", "UMAP", "fresh SGD",
                 "copies", "the ruler"):
        assert f"**{term}**" in words, term


def test_the_glossary_page_shows_words_not_keys(monkeypatch, root):
    import re

    at = show(open_app(monkeypatch, root), "glossary")
    text = re.sub(r"`[^`]*`", "", " ".join(m.value for m in at.markdown))  # config keys in backticks are fine
    assert re.findall(r"\b[a-z]+(?:_[a-z0-9]+)+\b", text) == []
    assert "**the zoo's distinct predictions at the same count**" in text and "**x0-prediction**" in text


def test_no_metric_on_any_page_points_its_arrow_against_its_sign(monkeypatch, root):
    at = open_app(monkeypatch, root)
    for page in ("overview", "similarity", "autoencoder", "denoising"):
        arrows_follow_signs(show(at, page))


def test_the_training_page_scrubs_the_snapshots_and_shows_the_dynamics_records(monkeypatch, root):
    at = show(open_app(monkeypatch, root), "training")
    records = RunDir(root / "tiny").load("dynamics.safetensors")[1]["snapshots"]
    slider = at.select_slider(key="train_step")
    assert list(slider.options) == [str(r["step"]) for r in records] and int(slider.value) == records[-1]["step"]
    shown = {m.label: m.value for m in at.metric}
    assert shown["median accuracy"] == f"{records[-1]['median']:.2f}%"
    slider.set_value(records[0]["step"]).run()
    shown = {m.label: m.value for m in at.metric}
    assert shown["median accuracy"] == f"{records[0]['median']:.2f}%" and not at.exception
    lines = {t["name"]: t["y"] for t in charts(at)[0]["data"]}
    assert "answer" in lines and len(decode(lines["answer"])) == len(records)
    assert any("Across zoo sizes" in s.value for s in at.subheader)
    assert any("No other runs of this config" in i.value for i in at.info)  # one run: no K grid yet
