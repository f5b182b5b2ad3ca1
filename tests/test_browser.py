"""The explorer in a real browser: `streamlit run app/main.py` on 127.0.0.1, every page opened in
headless Chromium (playwright, system /usr/bin/chromium): no Streamlit exception or error alert,
every chart drawn. Screenshots go to tests/screenshots/ for a human to look at.

Slow (starts a server, builds the tiny run): `pytest -m browser`.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from app_fixtures import REPO, app_run, clone_run  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "tests" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]
# (url path, screenshot name, how many charts the page draws at least)
PAGES = [("", "overview", 1), ("accuracy", "accuracy", 1), ("latent", "latent", 2), ("similarity", "similarity", 3),
         ("denoising", "denoising", 3), ("new_run", "new_run", 0), ("compare", "compare", 1)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is missing: pip install playwright")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(app_run, tmp_path_factory):  # noqa: F811
    """A Streamlit server over a runs root with the tiny run and a copy of it (for Compare)."""
    root = tmp_path_factory.mktemp("browser-runs")
    clone_run(app_run, root, "tiny")
    clone_run(app_run, root, "tiny-copy")
    broken = clone_run(app_run, root, "broken")
    (broken / "analysis.safetensors").write_bytes((broken / "analysis.safetensors").read_bytes()[:1000])
    old = time.time() - 86400  # listed last, so Compare pairs tiny with tiny-copy
    os.utime(broken / "run.json", (old, old))
    port = _free_port()
    env = dict(os.environ, PDIFF_RUNS=str(root), PDIFF_AUTOSTART="0")
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port),
                                 "--server.headless", "true", "--server.address", "127.0.0.1",
                                 "--browser.gatherUsageStats", "false"],
                                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"streamlit did not start: {log.read_text()[-2000:]}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url, wait_until="domcontentloaded", timeout=60_000)
    page.wait_for_selector("h1", timeout=60_000)
    return page


def _errors(page) -> list[str]:
    return [a.inner_text() for a in page.locator('[data-testid="stAlert"]').all()
            if a.locator('[data-testid="stAlertContentError"]').count()]


@pytest.mark.parametrize("path,name,charts", PAGES, ids=[p[1] for p in PAGES])
def test_page_renders(browser, server, path, name, charts):
    page = _open(browser, f"{server}/{path}?run=tiny")
    try:
        if charts:
            page.wait_for_selector(".js-plotly-plot", timeout=60_000)
            page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length >= {charts}", timeout=60_000)
        _wait_until_idle(page)
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        assert page.locator('[data-testid="stException"]').count() == 0, page.inner_text("body")[:2000]
        assert not _errors(page), _errors(page)
        assert page.locator(".js-plotly-plot").count() >= charts
    finally:
        page.close()


def test_damaged_run_shows_a_message_not_a_traceback(browser, server):
    """Also checks that the error selectors above do find an error when there is one."""
    page = _open(browser, f"{server}/latent?run=broken")
    try:
        page.wait_for_selector('[data-testid="stAlertContentError"]', timeout=60_000)
        _wait_until_idle(page)
        page.screenshot(path=str(SCREENSHOTS / "damaged.png"))
        assert any("damaged" in e for e in _errors(page)), _errors(page)
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        page.close()


def _wait_until_idle(page, timeout: float = 30.0) -> None:
    """Until Streamlit stops running the script (its status widget disappears) and plots settle."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if page.locator('[data-testid="stStatusWidget"]').count() == 0:
            break
        time.sleep(0.2)
    page.wait_for_timeout(800)
