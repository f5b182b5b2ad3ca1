"""What watching a live run costs the Streamlit server (target: under 10% of a core).

Starts `streamlit run app/main.py` over a fresh runs root, launches `python -m pdiff run` there (a
default digits run with a long autoencoder, so it stays live), opens a page in headless Chromium
(playwright, /usr/bin/chromium) and measures the server process's CPU time (user + system, psutil)
over a window, for the Overview (pipeline, live loss curves, time estimates, sidebar progress) and
for a page with only the sidebar's live progress. Both processes are stopped at the end. Exits 1
when the busier page reaches the target (benchmarks/targets.py).

Run from the repository root:
  python -m benchmarks.bench_watch [--seconds 40]
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.targets import Target, check, exit_code

SERVER_CPU = Target("server CPU while watching, busier page (% of a core)", "<", 10.0)
PAGES = (("", "Overview (pipeline, loss curves, estimates, sidebar)"), ("glossary", "another page (sidebar progress only)"))


def free_port() -> int:
    """A port nobody listens on now, for this benchmark's own server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(root: Path, port: int) -> tuple[subprocess.Popen, subprocess.Popen]:
    """The Streamlit server over `root`, and a default run there kept live by a long autoencoder."""
    env = dict(os.environ, PDIFF_RUNS=str(root), PDIFF_AUTOSTART="0", OMP_NUM_THREADS="1")
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port),
                               "--server.headless", "true", "--server.address", "127.0.0.1",
                               "--browser.gatherUsageStats", "false"], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = subprocess.Popen([sys.executable, "-m", "pdiff", "run", "--out", str(root / "live"), "--quiet",
                            "--set", "autoencoder.steps=50000", "--set", "analysis.umap=false"], cwd=REPO, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return server, run


def wait_healthy(url: str, tries: int = 120) -> None:
    """Wait (up to a minute) until the server answers its health check."""
    for _ in range(tries):
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            return
        except OSError:
            time.sleep(0.5)


def watch(url: str, server_pid: int, seconds: float) -> float:
    """The server's CPU share (% of a core) while Chromium shows each page; the busier page's share."""
    import psutil
    from playwright.sync_api import sync_playwright

    process, worst = psutil.Process(server_pid), 0.0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        for path, what in PAGES:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(f"{url}/{path}?run=live")
            page.wait_for_selector("h1", timeout=60_000)
            time.sleep(8)  # first render and the run's first progress
            before, start = process.cpu_times(), time.monotonic()
            time.sleep(seconds)
            after, elapsed = process.cpu_times(), time.monotonic() - start
            share = 100 * ((after.user - before.user) + (after.system - before.system)) / elapsed
            worst = max(worst, share)
            print(f"{what:<55} {share:5.1f}% of a core", flush=True)
            page.close()
        browser.close()
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=40.0, help="measuring window per page")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    port = free_port()
    server, run = start(root, port)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        print(f"server pid {server.pid}, run pid {run.pid}, window {args.seconds:.0f} s per page")
        worst = watch(url, server.pid, args.seconds)
    finally:
        run.send_signal(signal.SIGINT)
        server.terminate()
        run.wait(timeout=30)
        server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)
    print()
    return exit_code([check(SERVER_CPU, worst)])

if __name__ == "__main__":
    sys.exit(main())
