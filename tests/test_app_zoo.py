"""The explorer on an imported zoo explored alone (no generator): every page that applies shows it,
coloured by the imported metadata; the pages that need a generator say so in one line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from test_import import write_zoo, zoo_config

from app import projector
from pdiff.core.config import DataConfig
from pdiff.pipeline.runner import run_pipeline
from pdiff.zoo.datasets import load_dataset

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")
SHOWN = {"overview": 1, "accuracy": 1, "similarity": 5, "latent": 2}  # pages with charts, and how many
NEED_A_GENERATOR = ("autoencoder", "denoising", "guided")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A runs root holding one imported zoo of four seeds, explored alone."""
    base = tmp_path_factory.mktemp("app-zoo")
    folder = write_zoo(base / "mlps", load_dataset(DataConfig()), seeds=4, saves=(40, 80))
    run_pipeline(base / "runs" / "explored", zoo_config(folder, generate=False))
    return base / "runs"


def open_page(monkeypatch, root: Path, page: str) -> AppTest:
    monkeypatch.setenv("PDIFF_RUNS", str(root))
    monkeypatch.setenv("PDIFF_AUTOSTART", "0")
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()
    at.switch_page(f"views/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("page", list(SHOWN))
def test_every_page_that_applies_shows_the_run(monkeypatch, root, page):
    at = open_page(monkeypatch, root, page)
    assert not at.error and len(at.get("plotly_chart")) == SHOWN[page], [e.value for e in at.error]
    assert not [i.value for i in at.info if "generator" in i.value]


@pytest.mark.parametrize("page", NEED_A_GENERATOR)
def test_a_page_that_needs_the_generator_says_so_in_one_line(monkeypatch, root, page):
    at = open_page(monkeypatch, root, page)
    assert [i.value for i in at.info] == [next(i.value for i in at.info)] and "needs a generator" in at.info[0].value
    assert not at.error and not at.get("plotly_chart")


def test_the_overview_names_nothing_to_judge_and_the_runs(monkeypatch, root):
    at = open_page(monkeypatch, root, "overview")
    text = " ".join(m.value for m in at.markdown)
    assert "Nothing to judge" in text and "The zoo's runs" in text
    assert any("between neuron-aligned models" in c.value for c in at.caption)


def test_the_latent_map_is_coloured_by_the_imported_metadata(monkeypatch, root):
    at = open_page(monkeypatch, root, "latent")
    assert at.radio(key="lat_space_map").options == ["parameters"]  # no autoencoder, no latents
    assert at.radio(key="lat_space").options == ["parameters", "predictions"]  # the neighbours' spaces too
    assert {"run (metadata)", "optimizer (metadata)", "SGD step"} <= set(at.selectbox(key="lat_colour").options)
    at.selectbox(key="lat_colour").set_value("run").run()
    assert not at.exception
    names = [t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
    # three training runs and the held-out one (fresh), one trace per run value
    assert {"zoo: run seed0", "zoo: run seed1", "zoo: run seed2", "fresh: run seed3"} <= set(names)


def test_projection_scatter_colours_by_a_label_with_one_trace_per_value():
    points = {"zoo": np.zeros((4, 2)), "generated": np.ones((2, 2))}
    accuracy = {"zoo": np.full(4, 90.0), "generated": np.full(2, 80.0)}
    fig = projector.projection_scatter(points, {"zoo": ["a", "b", "a", "b"]}, "run", accuracy)
    traces = {t.name: t for t in fig.data}
    assert len(traces["zoo: run a"].x) == len(traces["zoo: run b"].x) == 2
    pick = traces[projector.PICK]
    assert [row[3] for row in pick.customdata if row[0] == "zoo"] == ["a", "b", "a", "b"]  # each model keeps its value
    assert traces["generated (no value)"].marker.color == projector.NO_VALUE  # a group without the label is grey
    steps = {"zoo": list(range(40))}
    fig = projector.projection_scatter({"zoo": np.zeros((40, 2))}, steps, "step", {"zoo": np.zeros(40)})
    assert fig.layout.coloraxis.colorbar.title.text == "step"  # numbers: a colour scale
