"""Time the Guided page (target: the same request again answers in under 2 s).

With streamlit.testing.v1.AppTest in this process, on a run made with the `mnist1d-guided` preset,
for the page's default request (the zoo's median accuracy, scale 2, 50 models, seed 0):

  first, cold:   the run folder's answers deleted and Streamlit's caches cleared; the page opened:
                 the generator is loaded, the request sampled, evaluated, measured and stored;
  first, warm:   the generator already loaded, a request not asked before (another seed);
  again:         a new session with Streamlit's caches cleared, the same request: read from the
                 run folder (guided/<key>.safetensors).

Each is the median of 3. Exits 1 when "again" exceeds 2 s. AppTest times the whole script run
(sidebar included) but not the browser's drawing.

Run from the repository root:
  python -m benchmarks.bench_guided_page [RUN_DIR]   (default runs/guided; built with
                                                    `python -m pdiff run --preset mnist1d-guided` when missing)
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.targets import Target, check, exit_code

REPO = Path(__file__).resolve().parents[1]
AGAIN = Target("the same request again, new session (s)", "<", 2.0)
REPEATS = 3


def ensure_run(path: Path) -> None:
    """Reuse a finished guided run; build (or resume) it with the CLI otherwise."""
    sys.path.insert(0, str(REPO))
    from pdiff.core.rundir import RunDir
    from pdiff.pipeline.table import STAGE_NAMES

    run = RunDir(path)
    if run.exists() and all(run.stage_done(s) for s in STAGE_NAMES):
        return
    print(f"building the mnist1d-guided run in {path} (a minute or two) ...", flush=True)
    subprocess.run([sys.executable, "-m", "pdiff", "run", "--preset", "mnist1d-guided", "--out", str(path), "--quiet"],
                   cwd=REPO, check=True)


def open_page(run: Path):
    """A new session on the Guided page (its first run answers the default request)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=600)
    at.query_params["run"] = run.name
    at.run()
    at.switch_page("views/guided.py")
    return at


def timed(at) -> float:
    start = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - start
    if at.exception or at.error:
        raise RuntimeError(f"page failed: {[e.value for e in at.exception] + [e.value for e in at.error]}")
    return elapsed


def clear_caches() -> None:
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", default="runs/guided", help="run directory (default runs/guided)")
    args = parser.parse_args(argv)
    run = Path(args.run).resolve()
    ensure_run(run)
    os.environ["PDIFF_RUNS"], os.environ["PDIFF_AUTOSTART"] = str(run.parent), "0"
    from pdiff.guide import CACHE_DIR

    open_page(run)  # imports (torch, plotly, streamlit) are not the page's time
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("streamlit"):
            logging.getLogger(name).setLevel(logging.ERROR)
    cold, warm, again = [], [], []
    for repeat in range(REPEATS):
        shutil.rmtree(run / CACHE_DIR, ignore_errors=True)
        clear_caches()
        at = open_page(run)
        cold.append(timed(at))
        at.number_input(key="guided_seed").set_value(100 + repeat)
        warm.append(timed(at))
        clear_caches()
        again.append(timed(open_page(run)))
    print(f"run {run} (the page's default request: zoo median, scale 2, 50 models); median of {REPEATS}, seconds")
    for label, times in (("first request, cold (generator loaded, sampled, evaluated, stored)", cold),
                         ("first request, generator already loaded", warm),
                         ("the same request again, new session (read from the run folder)", again)):
        print(f"{label:<68}{statistics.median(times):>6.2f}  ({', '.join(f'{x:.2f}' for x in times)})")
    return exit_code([check(AGAIN, statistics.median(again))])


if __name__ == "__main__":
    sys.exit(main())
