"""Time every page of the Streamlit explorer against a finished default run (target: 3 s warm).

For each page, with streamlit.testing.v1.AppTest in this process (modules already imported):
  cold: data caches cleared (st.cache_data / st.cache_resource), then one run of the page;
  warm: the page rerun with caches filled (what a user sees when moving a widget).
Each is the median of 3. Prints per-page times and their ratio to the 3 s target, plus the time
of the very first script run (imports of torch, plotly, pdiff). AppTest includes building and
serializing every element (plotly JSON included) but not the browser's drawing. Compare shows
its "needs two runs" note unless the run's folder holds a second run.

Run from the repository root:
  python -m benchmarks.bench_app [RUN_DIR]     (default runs/digits; built with
                                               `python -m pdiff run --out RUN_DIR` when missing)
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 3.0
PAGES = ["overview", "accuracy", "similarity", "latent", "autoencoder", "denoising", "glossary", "new_run", "compare"]
REPEATS = 3


def ensure_run(path: Path) -> None:
    """Reuse a finished run; build (or resume) it with the CLI otherwise."""
    sys.path.insert(0, str(REPO))
    from pdiff.core.rundir import RunDir
    from pdiff.pipeline.table import STAGE_NAMES

    run = RunDir(path)
    if run.exists() and all(run.stage_done(s) for s in STAGE_NAMES):
        return
    print(f"building the default run in {path} (about a minute) ...", flush=True)
    subprocess.run([sys.executable, "-m", "pdiff", "run", "--out", str(path), "--quiet"], cwd=REPO, check=True)


def app(run: Path):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=120)
    at.query_params["run"] = run.name
    return at


def timed_run(at) -> float:
    start = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - start
    if at.exception:
        raise RuntimeError(f"page raised: {[e.value for e in at.exception]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", default="runs/digits", help="run directory (default runs/digits)")
    args = parser.parse_args()
    run = Path(args.run).resolve()
    ensure_run(run)
    os.environ["PDIFF_RUNS"] = str(run.parent)
    os.environ["PDIFF_AUTOSTART"] = "0"
    import logging

    import streamlit as st

    at = app(run)
    first = timed_run(at)
    for name in list(logging.root.manager.loggerDict):  # AppTest outside a server logs each cache clear
        if name.startswith("streamlit"):
            logging.getLogger(name).setLevel(logging.ERROR)
    print(f"run {run}  (runs root {run.parent})")
    print(f"first script run in this process (cold caches, streamlit and plotly imports): {first:.2f} s\n")
    print(f"{'page':<12}{'cold s':>9}{'warm s':>9}{'warm/3s':>9}")
    worst = 0.0
    for page in PAGES:
        cold, warm = [], []
        for _ in range(REPEATS):
            at = app(run)
            timed_run(at)
            st.cache_data.clear()
            st.cache_resource.clear()
            at.switch_page(f"views/{page}.py")
            cold.append(timed_run(at))
            for _ in range(REPEATS):
                warm.append(timed_run(at))
        c, w = statistics.median(cold), statistics.median(warm)
        worst = max(worst, w)
        print(f"{page:<12}{c:>9.3f}{w:>9.3f}{w / TARGET_S:>9.2f}")
    print(f"\nslowest warm page: {worst:.3f} s = {worst / TARGET_S:.2f} x the {TARGET_S:.0f} s target")
    return 0 if worst < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
