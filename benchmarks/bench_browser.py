"""Time the explorer's pages the way a user meets them: in headless Chromium against a real
`streamlit run` server (what bench_app's in-process AppTest cannot see: the websocket session, the
plotly JSON sent to the browser, the browser drawing every chart).

For each page, median of 3:
  new tab: a new tab of the same browser (so its cache holds Streamlit's frontend) opens the page's
           URL; timed until every chart is drawn and Streamlit has finished running the script (its
           status widget gone);
  reload:  the same tab reloaded (the server's caches are warm);
  sidebar: from another page, a click on the page's entry in the sidebar navigation.

Run from the repository root (needs /usr/bin/chromium and the playwright package):
  python -m benchmarks.bench_browser [RUN_DIR]     (default runs/digits; built when missing)
  python -m benchmarks.bench_browser --app . --app /tmp/old   (this checkout and another, timed in turn)
"""
from __future__ import annotations

import argparse
import math
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from functools import partial
from pathlib import Path

from benchmarks.bench_app import ensure_run
from benchmarks.targets import no_target

REPO = Path(__file__).resolve().parents[1]
PAGES = [("", "Overview", 2), ("accuracy", "Accuracy", 1), ("similarity", "Similarity", 4),
         ("latent", "Latent space", 3), ("autoencoder", "Autoencoder", 3), ("denoising", "Denoising", 4)]
REPEATS = 3
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
IDLE_JS = ("n => [...document.querySelectorAll('.js-plotly-plot')].filter(g => g.querySelector('.main-svg')).length "
           ">= n && !document.querySelector('[data-testid=\"stStatusWidget\"]')")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(root: Path, repo: Path = REPO) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, PDIFF_RUNS=str(root), PDIFF_AUTOSTART="0")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port),
                             "--server.headless", "true", "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false"], cwd=repo, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError("streamlit did not start")


def settle(page, charts: int) -> None:
    page.wait_for_selector("h1", timeout=120_000)
    page.wait_for_timeout(150)  # the status widget appears a moment after the first element
    page.wait_for_function(IDLE_JS, arg=charts, timeout=120_000, polling=50)


def timed(action, page, charts: int) -> float:
    """Seconds from `action` until the page has settled; NaN when it did not within two minutes."""
    from playwright.sync_api import Error as PlaywrightError

    start = time.perf_counter()
    try:
        action()
        settle(page, charts)
    except PlaywrightError:
        return float("nan")
    return time.perf_counter() - start - 0.15


def measure(context, url: str, run: str, path: str, title: str, charts: int) -> tuple[float, float, float]:
    """(new tab, reload, sidebar) seconds for one page, once."""
    page = context.new_page()
    try:
        new_tab = timed(partial(page.goto, f"{url}/{path}?run={run}", wait_until="commit"), page, charts)
        reload = timed(partial(page.reload, wait_until="commit"), page, charts)
        page.goto(f"{url}/glossary?run={run}", wait_until="commit")
        settle(page, 0)
        page.wait_for_timeout(500)
        link = page.locator('[data-testid="stSidebarNav"] a', has_text=title).first
        return new_tab, reload, timed(link.click, page, charts)
    finally:
        page.close()


def median(times: list[float]) -> float:
    finite = [t for t in times if not math.isnan(t)]
    return statistics.median(finite) if finite else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", default="runs/digits", help="run directory (default runs/digits)")
    parser.add_argument("--app", action="append", help="serve the app of this checkout (repeat it to compare "
                        "checkouts, e.g. an older commit's: pages are timed in turn, so both see the same load)")
    args = parser.parse_args(argv)
    apps = [Path(a).resolve() for a in args.app or [str(REPO)]]
    run = Path(args.run).resolve()
    ensure_run(run)
    from playwright.sync_api import sync_playwright

    servers = [start_server(run.parent, app) for app in apps]
    times: dict[tuple[int, str], list[tuple[float, float, float]]] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
            contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in servers]
            for context, (_, url) in zip(contexts, servers):  # the first visit loads the frontend and the imports
                page = context.new_page()
                page.goto(f"{url}/?run={run.name}", wait_until="commit")
                settle(page, 1)
                page.close()
            for _ in range(REPEATS):
                for path, title, charts in PAGES:
                    for i, (context, (_, url)) in enumerate(zip(contexts, servers)):
                        times.setdefault((i, title), []).append(measure(context, url, run.name, path, title, charts))
            browser.close()
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(timeout=20)
    print(f"run {run}; seconds until every chart is drawn and the script has finished (median of {REPEATS});")
    print("new tab: a new tab of the same browser (its cache holds the frontend)\n")
    for i, app in enumerate(apps):
        print(f"app: {app}")
        print(f"{'page':<14}{'new tab':>9}{'reload':>9}{'sidebar':>9}")
        rows = [(title, *(median([t[k] for t in times[(i, title)]]) for k in range(3))) for _, title, _ in PAGES]
        for title, new_tab, reload, sidebar in rows:
            print(f"{title:<14}{new_tab:>9.2f}{reload:>9.2f}{sidebar:>9.2f}")
        print(f"slowest: new tab {max(r[1] for r in rows):.2f} s, reload {max(r[2] for r in rows):.2f} s, "
              f"sidebar {max(r[3] for r in rows):.2f} s\n")
    return no_target("page times in a real browser, to compare checkouts side by side")


if __name__ == "__main__":
    sys.exit(main())
