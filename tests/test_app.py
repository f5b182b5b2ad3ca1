"""The Streamlit explorer under `streamlit.testing.v1.AppTest`: every page renders against a tiny
finished run and shows the numbers that are in the run's files; no runs (automatic start on and
off), a damaged run and a partial run give messages, not tracebacks; the New run form validates;
background runs launch, are found again, and cancel into a resumable state.
"""
from __future__ import annotations

import base64
import json
import os
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
CHARTS = {"overview": 1, "accuracy": 1, "similarity": 4, "latent": 3, "autoencoder": 3, "denoising": 4, "glossary": 0,
          "new_run": 0, "compare": 0, "guided": 0}


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
    table = frame(at, "max IoU (median)", "ensemble gain")
    assert list(table.index) == list(card)
    for group, row in card.items():
        for key, title in (("median", "median"), ("best", "best"), ("max_iou_median", "max IoU (median)"),
                           ("nn_distance_median", "NN distance (median)")):
            assert table.loc[group, title] == pytest.approx(row[key])
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
    from pdiff.judge.verdict import verdict

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


def test_latent_page_neighbours_and_projection(monkeypatch, root):
    at = show(open_app(monkeypatch, root), "latent")
    tensors, meta = RunDir(root / "tiny").load("analysis.safetensors")
    evaluation, _ = RunDir(root / "tiny").load("evaluation.safetensors")
    scatter = {t["name"]: t for t in charts(at)[0]["data"]}
    np.testing.assert_allclose(decode(scatter["generated"]["x"]), tensors["generated.params_pca"][:, 0].numpy())
    assert charts(at)[0]["layout"]["dragmode"] == "zoom"  # so that a click selects
    index = at.selectbox(key="lat_pick_index").value
    assert index == int(evaluation["generated.accuracy"].argmax())  # best first
    table = frame(at, "IoU with selected")
    neighbours = tensors["generated.neighbours"][index].tolist()
    assert table["model"].tolist() == [f"generated #{index}"] + [f"zoo #{j}" for j in neighbours]
    expected = [evaluation["generated.accuracy"][index].item()]
    expected += [evaluation["zoo.accuracy"][j].item() for j in neighbours]
    np.testing.assert_allclose(table["accuracy (%)"], expected, rtol=1e-6)
    offset = sum(meta["sizes"][:meta["groups"].index("generated")])
    iou = tensors["iou"][offset + index, neighbours].numpy()
    np.testing.assert_allclose(table["IoU with selected"][1:], iou, rtol=1e-6)
    assert len(charts(at)[1]["data"]) == 4  # the model and its three nearest zoo models

    # a click on a zoo point in the chart picks that model
    _select(at, "lat_chart", ["zoo", 3, 0.0, 0.0])
    assert (at.selectbox(key="lat_pick_group").value, at.selectbox(key="lat_pick_index").value) == ("zoo", 3)
    assert frame(at, "IoU with selected")["model"].tolist()[0] == "zoo #3"
    # a box around several: the generated models lead, every picked model is listed
    _select(at, "lat_chart", ["zoo", 5, 0.0, 0.0], ["generated", 2, 0.0, 0.0], ["generated", 7, 0.0, 0.0])
    assert (at.selectbox(key="lat_pick_group").value, at.selectbox(key="lat_pick_index").value) == ("generated", 2)
    picked = frame(at, "nearest zoo model")
    assert picked["model"].tolist() == ["generated #2", "generated #7", "zoo #5"]
    nn = tensors["generated.nn_index"][7].item()
    assert picked.set_index("model").loc["generated #7", "nearest zoo model"] == f"zoo #{nn}"

    at.selectbox(key="lat_pick_group").set_value("generated").run()
    other = at.selectbox(key="lat_pick_index").options[-1]
    at.selectbox(key="lat_pick_index").set_value(int(other.split(":")[0][1:])).run()
    at.radio(key="lat_space").set_value("latents").run()
    at.radio(key="lat_colour").set_value("accuracy").run()
    at.toggle(key="lat_diff").set_value(True).run()
    assert not at.exception and not at.error
    scatter = {t["name"]: t for t in charts(at)[0]["data"]}
    np.testing.assert_allclose(decode(scatter["zoo"]["y"]), tensors["zoo.latent_pca"][:, 1].numpy())
    landing = next(c for c in charts(at) if c["data"] and c["data"][0]["type"] == "bar")
    counts = np.bincount(tensors["generated.nn_index"].numpy(), minlength=meta["sizes"][0])
    bars = dict(zip(decode(landing["data"][0]["x"]).tolist(), decode(landing["data"][0]["y"]).tolist()))
    assert bars == {i: int(c) for i, c in enumerate(counts) if c}


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
    scatter, _weights, hist, heatmap = charts(at)
    z = np.asarray(heatmap["data"][0]["z"], dtype=float) if isinstance(heatmap["data"][0]["z"], list) \
        else decode(heatmap["data"][0]["z"])
    cap = at.slider(key="sim_cap").value
    first = tensors["iou"][:min(cap, meta["sizes"][0]), :min(cap, meta["sizes"][0])].numpy()
    np.testing.assert_allclose(z[: len(first), : len(first)], first, rtol=1e-6)
    # the memorization plot: every generated model is in exactly one marker, at its (max IoU, accuracy)
    gen = next(t for t in scatter["data"] if t["name"] == "generated")
    iou, acc = tensors["generated.max_iou"].numpy(), evaluation["generated.accuracy"].numpy()
    members = [[int(i) for i in c[3].split()] for c in gen["customdata"]]
    assert sorted(i for m in members for i in m) == list(range(len(iou)))
    for x, y, m in zip(decode(gen["x"]), decode(gen["y"]), members):
        np.testing.assert_allclose(iou[m], x, rtol=1e-6)
        np.testing.assert_allclose(acc[m], y, rtol=1e-6)
    assert [t["name"] for t in scatter["data"]][-2:] == ["generated", "selected"]  # on top of zoo and baselines
    names = [t["name"] for t in hist["data"]]
    assert names == ["generated -> zoo", "zoo -> zoo"]
    np.testing.assert_allclose(decode(hist["data"][0]["x"]), tensors["generated.nn_distance"].numpy())
    # the model in focus by default: the generated model most like a training checkpoint
    assert at.selectbox(key="sim_pick_index").value == int(np.argmax(iou))
    # clicking a stacked marker selects every model in it
    stack = max(gen["customdata"], key=lambda c: c[2])
    _select(at, "sim_scatter", stack)
    listed = [int(i) for i in stack[3].split()]
    if len(listed) > 1:
        assert frame(at, "nearest zoo model")["model"].tolist() == [f"generated #{i}" for i in listed]
    assert at.selectbox(key="sim_pick_index").value == listed[0]
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
    assert f"scores {acc[0].mean():.1f}% on average" in story
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
    at.selectbox(key="cmp_b").set_value("tiny-seed1").run()
    assert at.selectbox(key="cmp_group").value == "generated"
    diff = frame(at, "key", "tiny", "tiny-seed1")
    assert diff.to_dict("records") == [{"key": "data.root", "tiny": '"data"', "tiny-seed1": '"elsewhere"'}]
    assert [t["name"] for t in charts(at)[0]["data"]] == ["tiny", "tiny-seed1"]
    a, b = _card(root / "tiny")["generated"], gen
    table = frame(at, "metric", "B − A").set_index("metric")
    row = table.loc["median accuracy (%)"]
    assert (row["A: tiny"], row["B: tiny-seed1"]) == (f"{a['median']:.2f}", f"{b['median']:.2f}")
    assert row["B − A"] == "+1.00"
    lo, hi = mover(a["median"], a["median_ci"], b["median"], b["median_ci"])
    assert row["95% CI of B − A"] == f"[{lo:+.2f}, {hi:+.2f}]"
    assert table.loc["max IoU to the zoo (median)", "B − A"] == f"{b['max_iou_median'] - a['max_iou_median']:+.3f}"
    assert table.loc["mean accuracy (%)", "B − A"] == "+0.00"  # unchanged
    for metric in ("good models (%)", "novelty (median)", "NN distance to the zoo (median)", "IoU within the group"):
        assert table.loc[metric, "95% CI of B − A"].startswith("["), metric  # every headline number has one
    at.selectbox(key="cmp_group").set_value("zoo").run()
    assert frame(at, "metric", "B − A").set_index("metric").loc["median accuracy (%)", "B − A"] == "+0.00"


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
    pid = launcher.launch(path, "digits", overrides)
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
        assert "interrupted" in launcher.log_tail(path)
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
