"""The explorer in a real browser: `streamlit run app/main.py` on 127.0.0.1, driven in headless
Chromium (playwright, system /usr/bin/chromium) the way a user drives it: every page opens with no
Streamlit exception or error alert and every chart drawn (a full-height screenshot of each goes to
tests/screenshots/ for a reviewer); a click on a dot of the Latent-space chart and on a marker of
the memorization plot changes the neighbour panel; dragging the denoising slider changes the
picture and its accuracy; a run launched from New run shows progress, cancels, and resumes.

Slow (starts a server, builds the tiny run): `pytest -m browser`.
"""
from __future__ import annotations

import contextlib
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
PAGES = [("", "overview", 1), ("accuracy", "accuracy", 1), ("similarity", "similarity", 5), ("latent", "latent", 3),
         ("pipeline", "pipeline", 1), ("autoencoder", "autoencoder", 3), ("denoising", "denoising", 4),
         ("glossary", "glossary", 0), ("new_run", "new_run", 0), ("compare", "compare", 2), ("guided", "guided", 0)]
# A run that stays in its first stage long enough to be watched and cancelled.
# (digits trains 30 epochs in about 2 s; 20,000 autoencoder steps take minutes: the test cancels long before.)
LONG_RUN = ["classifier.epochs=150", "autoencoder.steps=20000", "diffusion.steps=30", "diffusion.timesteps=100",
            "sample.num_models=10", "baselines.num_models=8", "analysis.umap=false"]
# Each dot of the first chart on the page, from the figure itself: the pick trace (every visible model, at
# the centre of its dot) converted to page pixels with the axes' own data-to-pixel maps:
# [group, index (a stacked marker's first model), x, y, pixels to the nearest other dot], the most isolated first.
DOTS_JS = """(group) => {
  const gd = document.querySelector('.js-plotly-plot');
  const pick = gd._fullData.find(t => t.name === 'pick');  // _fullData: x and y decoded from base64
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();
  const dots = Array.from(pick.x, (x, j) => [pick.customdata[j][0], Number(pick.customdata[j][1]),
                                             r.left + xa._offset + xa.l2p(x), r.top + ya._offset + ya.l2p(pick.y[j])]);
  return dots.filter(d => d[0] === group)
             .map(([g, i, x, y]) => [g, i, x, y, Math.min(...dots.filter(d => d[2] !== x || d[3] !== y)
                                                                .map(d => Math.hypot(d[2] - x, d[3] - y)))])
             .sort((p, q) => q[4] - p[4]);
}"""


# The subplot titles of the neighbour panel's weight pictures ("generated #3: 97.96%", "zoo #12: ...").
TITLES_JS = """() => { const gd = [...document.querySelectorAll('.js-plotly-plot')]
    .find(g => g.data && g.data[0].type === 'heatmap');
    return gd.layout.annotations.map(a => a.text); }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _missing(reason: str) -> None:
    """Skip on a developer's machine; fail where the browser tests must run (CI sets PDIFF_REQUIRE_BROWSER)."""
    if os.environ.get("PDIFF_REQUIRE_BROWSER", "").strip() not in ("", "0"):
        pytest.fail(f"{reason} (PDIFF_REQUIRE_BROWSER is set: the browser tests must run here)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is missing: apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright Python package is missing: pip install playwright")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def runs_root(app_run, tmp_path_factory):  # noqa: F811
    """A runs root with the tiny run, a copy of it (for Compare) and a damaged one."""
    root = tmp_path_factory.mktemp("browser-runs")
    clone_run(app_run, root, "tiny")
    clone_run(app_run, root, "tiny-copy")
    broken = clone_run(app_run, root, "broken")
    (broken / "analysis.safetensors").write_bytes((broken / "analysis.safetensors").read_bytes()[:1000])
    old = time.time() - 86400  # listed last, so Compare pairs tiny with tiny-copy
    os.utime(broken / "run.json", (old, old))
    return root


@pytest.fixture(scope="module")
def server(runs_root, tmp_path_factory):
    """A Streamlit server over the runs root."""
    port = _free_port()
    env = dict(os.environ, PDIFF_RUNS=str(runs_root), PDIFF_AUTOSTART="0", OMP_NUM_THREADS="1")
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


def _open(browser, url: str, height: int = 1000):
    page = browser.new_page(viewport={"width": 1400, "height": height})
    page.goto(url, wait_until="domcontentloaded", timeout=60_000)
    page.wait_for_selector("h1", timeout=60_000)
    return page


def _errors(page) -> list[str]:
    return [a.inner_text() for a in page.locator('[data-testid="stAlert"]').all()
            if a.locator('[data-testid="stAlertContentError"]').count()]


def _wait_until_idle(page, timeout: float = 30.0) -> None:
    """Until Streamlit stops running the script (its status widget disappears) and plots settle."""
    page.wait_for_timeout(300)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if page.locator('[data-testid="stStatusWidget"]').count() == 0:
            break
        time.sleep(0.2)
    page.wait_for_timeout(800)


def _full_page_screenshot(page, name: str) -> None:
    """Streamlit scrolls inside its own container, so a full-page screenshot stops at the viewport:
    grow the viewport to the content's height first."""
    height = page.evaluate("""() => Math.max(document.body.scrollHeight, ...[...document.querySelectorAll(
        '[data-testid="stMain"], [data-testid="stAppViewContainer"], [data-testid="stMainBlockContainer"]')]
        .map(e => e.scrollHeight))""")
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 60, 16000)})
    _wait_until_idle(page)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _click_until(page, button, appears, timeout: float = 90.0) -> None:
    from playwright.sync_api import Error as PlaywrightError

    """Click `button` until `appears` shows: a live panel redraws every few seconds, and a click that lands
    while it is being replaced is lost, as it would be for a user, who clicks again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if appears.count():
            return
        if button.count():
            with contextlib.suppress(PlaywrightError):  # replaced while clicking: click again
                button.click(timeout=5_000)
        page.wait_for_timeout(3_000)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "click_until_failed.png"))
    raise AssertionError(f"{appears} did not appear; sidebar: {page.locator('[data-testid=stSidebar]').inner_text()}")


def _subheaders(page) -> list[str]:
    return page.locator("h3").all_inner_texts()


@pytest.mark.parametrize("path,name,charts", PAGES, ids=[p[1] for p in PAGES])
def test_page_renders(browser, server, path, name, charts):
    page = _open(browser, f"{server}/{path}?run=tiny")
    try:
        if charts:
            page.wait_for_selector(".js-plotly-plot", timeout=60_000)
            page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length >= {charts}", timeout=60_000)
        _wait_until_idle(page)
        _full_page_screenshot(page, name)
        assert page.locator('[data-testid="stException"]').count() == 0, page.inner_text("body")[:2000]
        assert not _errors(page), _errors(page)
        assert page.locator(".js-plotly-plot").count() >= charts
    finally:
        page.close()


def _focus_heading(index_group: str) -> str:
    return (f"[...document.querySelectorAll('h3')].some(h => h.innerText.startsWith('{index_group}: what it errs "
            f"like'))")


def test_clicking_an_isolated_generated_dot_selects_that_model(browser, server, runs_root):
    """The dot is found from the figure's own data and axes, not from the drawing; the click lands on its
    centre; the model it selects is that generated model, with the checkpoint it errs like and the IoU
    the analysis stored."""
    from pdiff.core.rundir import RunDir

    tensors, _ = RunDir(runs_root / "tiny").load("analysis.safetensors")
    page = _open(browser, f"{server}/latent?run=tiny", height=1400)
    try:
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        _wait_until_idle(page)
        before = _subheaders(page)[0]
        before_titles = page.evaluate(TITLES_JS)
        _, index, x, y, gap = page.evaluate(DOTS_JS, "generated")[0]  # the generated dot furthest from any
        if before.startswith(f"generated #{index}:"):  # already in focus: take the next most isolated one
            _, index, x, y, gap = page.evaluate(DOTS_JS, "generated")[1]
        assert gap > 3
        page.mouse.click(x, y)
        page.wait_for_function(_focus_heading(f"generated #{index}"), timeout=30_000)
        _wait_until_idle(page)
        assert _subheaders(page)[0] == f"generated #{index}: what it errs like and its nearest checkpoints"
        assert f"model=generated%3A{index}" in page.url or f"model=generated:{index}" in page.url
        errs, iou = int(tensors["generated.max_iou_index"][index]), float(tensors["generated.max_iou"][index])
        body = page.inner_text("body")
        assert f"generated #{index} makes the same mistakes as zoo #{errs} with IoU {iou:.3f}" in body
        titles = page.evaluate(TITLES_JS)  # the pictures: the model, the checkpoint it errs like, ...
        assert titles[0].startswith(f"in focus<br>generated #{index}: ") and titles != before_titles
        assert titles[1].startswith(f"errs like (max IoU)<br>zoo #{errs}:")
        _full_page_screenshot(page, "latent_focus")

        # a zoo dot too, then a box drawn with the toolbar's Box select picks several models at once
        _, index, x, y, _ = page.evaluate(DOTS_JS, "zoo")[0]
        page.mouse.click(x, y)
        page.wait_for_function(_focus_heading(f"zoo #{index}"), timeout=30_000)
        _wait_until_idle(page)
        page.locator(".js-plotly-plot").first.hover()
        page.locator('.js-plotly-plot .modebar-btn[data-val="select"]').first.click()
        area = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
        page.mouse.move(area["x"] + 2, area["y"] + 2)
        page.mouse.down()
        page.mouse.move(area["x"] + area["width"] - 2, area["y"] + area["height"] - 2, steps=8)
        page.mouse.up()
        page.wait_for_function("document.body.innerText.includes('models selected')", timeout=30_000)
        _wait_until_idle(page)
        assert _subheaders(page)[0].startswith("generated #")  # the generated models lead a selection
    finally:
        page.close()


def test_clicking_a_marker_of_the_memorization_plot_shows_its_models(browser, server):
    page = _open(browser, f"{server}/similarity?run=tiny", height=1400)
    try:
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        _wait_until_idle(page)
        before = _subheaders(page)[1]
        assert before.startswith("generated #")
        _, index, x, y, _ = page.evaluate(DOTS_JS, "zoo")[0]
        page.mouse.click(x, y)
        page.wait_for_function(_focus_heading(f"zoo #{index}"), timeout=30_000)
        _wait_until_idle(page)
        assert _subheaders(page)[1] == f"zoo #{index}: what it errs like and its nearest checkpoints"
        assert "Shared mistakes." in page.inner_text("body")
        _full_page_screenshot(page, "similarity_focus")
    finally:
        page.close()


def test_dragging_the_denoising_slider_changes_the_picture_and_its_accuracy(browser, server):
    page = _open(browser, f"{server}/denoising?run=tiny", height=1400)
    picture_js = """() => { const gd = [...document.querySelectorAll('.js-plotly-plot')]
        .find(g => g.data && g.data[0].type === 'heatmap');
        return [gd.layout.annotations[0].text, Array.from(gd.calcdata[0][0].z.flat().slice(0, 40))]; }"""
    try:
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        _wait_until_idle(page)
        label, picture = page.evaluate(picture_js)
        metric = page.locator('[data-testid="stMetricLabel"]').first.inner_text()
        assert label.startswith("x0-prediction at t=") and metric.startswith("generated #0: accuracy of x0 at t=")
        thumb = page.locator('.st-key-den_step input[type="range"]').locator("xpath=../..")
        box = thumb.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + 500, box["y"] + box["height"] / 2, steps=12)
        page.mouse.up()
        page.wait_for_function(f"!document.body.innerText.includes({metric!r})", timeout=30_000)
        _wait_until_idle(page)
        new_label, new_picture = page.evaluate(picture_js)
        new_metric = page.locator('[data-testid="stMetricLabel"]').first.inner_text()
        step, new_step = metric.rsplit("=", 1)[1], new_metric.rsplit("=", 1)[1]
        assert int(new_step) < int(step)  # dragged right: towards the final sample
        assert new_label != label and new_label.startswith(f"x0-prediction at t={new_step}:")
        assert new_picture != picture  # the decoded parameters changed
        value = page.locator('[data-testid="stMetricValue"]').first.inner_text()
        assert value.endswith("%") and new_label.split("<br>")[0].endswith(value)  # the picture's accuracy: the metric's
        assert "(own scale ±" in new_label  # each picture on its own scale, said in its title
    finally:
        page.close()


def test_launch_a_run_watch_it_cancel_and_resume(browser, server, runs_root):
    from app import launcher

    path = runs_root / "launched"
    page = _open(browser, f"{server}/new_run?run=tiny", height=1300)
    try:
        _wait_until_idle(page)
        page.locator(".st-key-new_name_digits input").fill("launched")
        page.locator(".st-key-new_extra_digits textarea").fill("\n".join(LONG_RUN))
        page.get_by_role("button", name="Launch run").click()
        sidebar = page.locator('[data-testid="stSidebar"]')
        sidebar.get_by_role("button", name="Cancel run").wait_for(timeout=60_000)
        page.wait_for_function("document.querySelector('[data-testid=\"stSidebar\"]').innerText.includes('collect')",
                               timeout=60_000)
        assert sidebar.locator('[data-testid="stProgress"]').count() == 1
        _full_page_screenshot(page, "run_live")
        _click_until(page, sidebar.get_by_role("button", name="Cancel run"),
                     sidebar.get_by_role("button", name="Resume run"))
        assert launcher.active_pid(path) is None
        assert "stopped after" in sidebar.inner_text()
        _click_until(page, sidebar.get_by_role("button", name="Resume run"),
                     sidebar.get_by_role("button", name="Cancel run"))
        assert launcher.active_pid(path) is not None  # running again, with the stored config
        page.goto(f"{server}/?run=launched", wait_until="domcontentloaded")
        page.wait_for_selector(".js-plotly-plot", timeout=60_000)
        _wait_until_idle(page)
        assert "Stage details and times" in page.inner_text("body")
        _full_page_screenshot(page, "run_live_overview")
    finally:
        launcher.cancel(path)
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
