"""An imported zoo explored alone, in a real browser (the machinery of test_browser.py): the pages
that apply draw it with no error, the Latent space map coloured by the imported run ids, and a
page that needs the generator says so; full-height screenshots go to tests/screenshots/zoo-*.png.

Slow (starts a server, trains a small zoo): `pytest -m browser`.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from test_browser import _errors, _full_page_screenshot, _open, _wait_until_idle, browser, server  # noqa: F401
from test_import import write_zoo, zoo_config

from pdiff.core.config import DataConfig
from pdiff.pipeline.runner import run_pipeline
from pdiff.zoo.datasets import load_dataset

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAGES = [("", "overview", 1), ("accuracy", "accuracy", 1), ("similarity", "similarity", 4), ("latent", "latent", 2)]


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory) -> Path:
    """Overrides test_browser's: a runs root holding one imported zoo of five seeds, explored alone."""
    base = tmp_path_factory.mktemp("browser-zoo")
    folder = write_zoo(base / "mlps", load_dataset(DataConfig()), seeds=5, saves=(40, 80, 120))
    run_pipeline(base / "runs" / "zoo", zoo_config(folder, generate=False))
    return base / "runs"


@pytest.mark.parametrize("path,name,charts", PAGES, ids=[p[1] for p in PAGES])
def test_an_imported_zoo_renders(browser, server, path, name, charts):  # noqa: F811
    page = _open(browser, f"{server}/{path}?run=zoo")
    try:
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length >= {charts}", timeout=60_000)
        _wait_until_idle(page)
        _full_page_screenshot(page, f"zoo-{name}")
        assert page.locator('[data-testid="stException"]').count() == 0, page.inner_text("body")[:2000]
        assert not _errors(page), _errors(page)
    finally:
        page.close()


def test_the_latent_map_is_coloured_by_run(browser, server):  # noqa: F811
    page = _open(browser, f"{server}/latent?run=zoo", height=1400)
    try:
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        _wait_until_idle(page)
        page.locator('[data-testid="stSelectbox"]').filter(has_text="Colour by").locator("input").click()
        page.get_by_role("option", name="run (metadata)", exact=True).click()
        page.wait_for_function("[...document.querySelectorAll('.js-plotly-plot')].some(g => g.data && "
                               "g.data.some(t => t.name === 'zoo: run seed0'))", timeout=60_000)
        _wait_until_idle(page)
        names = page.evaluate("() => document.querySelector('.js-plotly-plot').data.map(t => t.name)")
        assert {"zoo: run seed0", "zoo: run seed3", "fresh: run seed4"} <= set(names)
        _full_page_screenshot(page, "zoo-latent-by-run")
    finally:
        page.close()


def test_a_generator_page_says_it_needs_one(browser, server):  # noqa: F811
    page = _open(browser, f"{server}/denoising?run=zoo")
    try:
        _wait_until_idle(page)
        assert "needs a generator" in page.inner_text("body") and not _errors(page)
        assert page.locator(".js-plotly-plot").count() == 0
    finally:
        page.close()
