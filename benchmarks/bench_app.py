"""Time every page of the Streamlit explorer against a finished default run (target: 3 s warm).

For each page, with streamlit.testing.v1.AppTest in this process (modules already imported):
  cold: data caches cleared (st.cache_data / st.cache_resource), then one run of the page;
  warm: the page rerun with caches filled (what a user sees when moving a widget).
Each is the median of 3 (`--repeats`). Prints per-page times and their ratio to the 3 s target,
plus the time of the very first script run (imports of torch, plotly, pdiff), and exits 1 when the
slowest warm page misses the target (benchmarks/targets.py). The pages are those in app/views/.
AppTest includes building and serializing every element (plotly JSON included) but not the
browser's drawing. Compare shows its "needs two runs" note unless the run's folder holds a second
run; Guided its note unless the run was made for guidance.

Run from the repository root:
  python -m benchmarks.bench_app [RUN_DIR] [--repeats 3]   (default runs/digits; built with
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
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.targets import Target, check, exit_code

WARM = Target("slowest page, warm (s)", "<", 3.0)
PAGES = sorted(p.stem for p in (REPO / "app" / "views").glob("*.py") if not p.stem.startswith("_"))


def ensure_run(path: Path) -> None:
    """Reuse a finished run; build (or resume) it with the CLI otherwise."""
    from pdiff.core.rundir import RunDir
    from pdiff.pipeline.table import STAGE_NAMES

    run = RunDir(path)
    if run.exists() and all(run.stage_done(s) for s in STAGE_NAMES):
        return
    print(f"building the default run in {path} (about a minute) ...", flush=True)
    subprocess.run([sys.executable, "-m", "pdiff", "run", "--out", str(path), "--quiet"], cwd=REPO, check=True)


def app(run: Path):
    """A fresh AppTest of the explorer, pointed at `run`."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=120)
    at.query_params["run"] = run.name
    return at


def timed_run(at) -> float:
    """Seconds of one script run; a page that raises stops the benchmark (its time would mean nothing)."""
    start = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - start
    if at.exception:
        raise RuntimeError(f"page raised: {[e.value for e in at.exception]}")
    return elapsed


def time_page(run: Path, page: str, repeats: int) -> tuple[float, float]:
    """(median cold, median warm) seconds of one page: cold after clearing the data caches."""
    import streamlit as st

    cold, warm = [], []
    for _ in range(repeats):
        at = app(run)
        timed_run(at)
        st.cache_data.clear()
        st.cache_resource.clear()
        at.switch_page(f"views/{page}.py")
        cold.append(timed_run(at))
        for _ in range(repeats):
            warm.append(timed_run(at))
    return statistics.median(cold), statistics.median(warm)


def quiet_streamlit_loggers() -> None:
    """AppTest outside a server logs each cache clear; keep the table readable."""
    import logging

    for name in list(logging.root.manager.loggerDict):
        if name.startswith("streamlit"):
            logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", default="runs/digits", help="run directory (default runs/digits)")
    parser.add_argument("--repeats", type=int, default=3, help="cold runs per page, and warm runs after each")
    args = parser.parse_args(argv)
    run = Path(args.run).resolve()
    ensure_run(run)
    os.environ["PDIFF_RUNS"] = str(run.parent)
    os.environ["PDIFF_AUTOSTART"] = "0"
    first = timed_run(app(run))
    quiet_streamlit_loggers()
    print(f"run {run}  (runs root {run.parent})")
    print(f"first script run in this process (cold caches, streamlit and plotly imports): {first:.2f} s\n")
    print(f"{'page':<12}{'cold s':>9}{'warm s':>9}{'warm/' + f'{WARM.limit:g}s':>9}")
    warm = {}
    for page in PAGES:
        c, warm[page] = time_page(run, page, args.repeats)
        print(f"{page:<12}{c:>9.3f}{warm[page]:>9.3f}{warm[page] / WARM.limit:>9.2f}")
    slowest = max(warm, key=warm.get)
    print()
    return exit_code([check(WARM, warm[slowest], label=slowest)])


if __name__ == "__main__":
    sys.exit(main())
