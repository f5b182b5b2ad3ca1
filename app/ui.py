"""What every page shares: the sidebar (run picker, automatic first run, live progress), the
selected run, the "not there yet" and "damaged" messages, and the pipeline diagram.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import streamlit as st

from app import data, figures, launcher, tables
from pdiff.core import plugins
from pdiff.core.errors import ConfigError, RunError
from pdiff.core.rundir import RunDir, safe_run_path, skipped_runs
from pdiff.judge import statements

RUN_KEY, PENDING_KEY = "run", "_select_run"
WARNING = ":material/warning:"
CLI_HINT = "python -m pdiff run --out {path}"
RESUME_HINT = ("`python -m pdiff run --out {path}`: on an existing run it resumes with the run's stored config "
               "(finished stages are reused; add `--set KEY=VALUE` to change a setting)")
LIVE_REFRESH_S = 5.0  # how often a page watching a live run polls its files: each poll costs ~50 ms of server CPU


# --------------------------------------------------------------------------- messages


def intro(text: str) -> None:
    """The two or three sentences that teach how to read a page (markdown, in grey)."""
    st.markdown(f":gray[{text}]")


def number(value: float | None, fmt: str) -> str:
    """A metric's text; undefined values (None in the scorecard) show as a dash."""
    return "–" if value is None else format(value, fmt)


def delta(difference: float | None, decimals: int, what: str) -> dict:
    """st.metric's delta keywords for a difference: its signed text, the arrow from its sign (none when
    it rounds to zero at the decimals shown), grey: an arrow never points up beside a smaller number."""
    if difference is None:
        return {}
    return {"delta": f"{statements.signed(difference, decimals)} {what}",
            "delta_arrow": statements.arrow(difference, decimals), "delta_color": "off"}


@contextlib.contextmanager
def guard(run: RunDir | None = None) -> Iterator[None]:
    """Turn a missing, damaged or partial run file into a message instead of a traceback; the
    rest of the page (and every other run) keeps working."""
    try:
        yield
    except (RunError, ConfigError) as exc:
        st.error(str(exc), icon=WARNING)
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:  # odd metadata in a received run
        where = f" in {run.path}" if run is not None else ""
        st.error(f"The run's files{where} do not hold what this page needs ({exc.__class__.__name__}: {exc}); "
                 f"the run is partial, damaged or from other code: redo the stage that wrote them with "
                 f"`python -m pdiff run --out {run.path if run else 'DIR'} --force STAGE`.", icon=WARNING)


def need(run: RunDir, stage: str, what: str) -> bool:
    """True when `stage` is done; else a message saying when `what` will appear (or, for a run
    without that stage, why it never will)."""
    stages = data.stages(run)
    by_name = {s["name"]: s for s in stages}
    if stage not in by_name:
        st.info(f"{what.capitalize()}: this run has no generator (it explores its zoo alone, generate=false), so "
                f"there is no {stage} stage to show.", icon=":material/info:")
        return False
    status = by_name[stage]
    state = status["status"]
    if state == "done" and not status.get("stale"):
        return True
    current = next((s["name"] for s in stages if s["status"] == "running"), None)
    resume = f"Resume the run from the sidebar, or in a terminal {RESUME_HINT.format(path=run.path)}."
    if state == "done":
        st.warning(f"{what.capitalize()}: the **{stage}** stage is stale ({status['stale']}), so its results are not "
                   f"shown. {resume}", icon=WARNING)
    elif state == "running":
        st.info(f"{what.capitalize()}: waiting for the **{stage}** stage (running now); this page fills in when it "
                f"finishes.", icon=":material/hourglass_top:")
    elif current is not None:
        st.info(f"{what.capitalize()}: waiting for the **{stage}** stage; the run is at **{current}** now, and this "
                f"page fills in when it gets there.", icon=":material/hourglass_top:")
    elif state == "failed":
        st.error(f"{what.capitalize()}: the **{stage}** stage failed: {status.get('error') or 'see run.log'}. "
                 f"Fix the cause, then: {resume}", icon=":material/error:")
    elif state in ("stopped", "interrupted"):
        st.info(f"{what.capitalize()}: the **{stage}** stage was interrupted before it finished. {resume}",
                icon=":material/pause_circle:")
    else:
        st.info(f"{what.capitalize()}: the **{stage}** stage has not run yet. {resume}", icon=":material/pause_circle:")
    return False


def require_generator(run: RunDir, what: str) -> None:
    """Stop a page that shows the generator, with one line, for a run without one (generate=false)."""
    try:
        if data.has_stage(run, "autoencoder"):
            return
    except (RunError, ConfigError):
        return  # a damaged run: the page's own guard says so
    st.info(f"{what.capitalize()} needs a generator, and this run has none: it explores its zoo alone "
            f"(generate=false). The Overview, Accuracy, Similarity and Latent space pages show it.",
            icon=":material/info:")
    st.stop()


# --------------------------------------------------------------------------- sidebar


def sidebar() -> RunDir | None:
    """Run picker (runs under the runs root only), automatic first run, live status; returns the
    selected run (also kept in session state for the pages)."""
    root = data.root()
    with st.sidebar:
        _load_plugins()
        names = data.list_run_names()
        st.toggle("Start the default run when there is none", value=launcher.autostart_default(), key="autostart",
                  help="Off by default when PDIFF_AUTOSTART=0. The default run takes about 25 s on a 2-core CPU.")
        if not names and st.session_state.autostart:
            names = _autostart(root)
        _apply_selection(names)
        if names:
            st.selectbox("Run", names, key=RUN_KEY, help=f"Runs under {root} ($PDIFF_RUNS); newest first.")
        else:
            st.caption(f"No runs under `{root}` yet.")
        for name, why in skipped_runs(root)[:3]:  # a symbolic link, a name with control characters
            st.caption(f":material/block: not opened: {name} ({why})")
        try:
            run = RunDir(safe_run_path(st.session_state[RUN_KEY], root)) if st.session_state.get(RUN_KEY) else None
        except RunError as exc:
            st.error(str(exc), icon=WARNING)
            run = None
        if run is not None:
            st.query_params["run"] = run.name
            run_status(run)
    return run


def _load_plugins() -> None:
    """The user's registrations ($PDIFF_PLUGINS; runs launched from here inherit it too)."""
    try:
        plugins.load()
    except ConfigError as exc:
        st.error(str(exc), icon=WARNING)


def _autostart(root) -> list[str]:
    try:
        launcher.launch(root / launcher.DEFAULT_RUN)
        st.session_state[PENDING_KEY] = launcher.DEFAULT_RUN
        st.toast("No runs yet: started building the default run in the background.")
    except (RunError, ConfigError, OSError) as exc:
        st.error(f"Could not start the default run: {exc}")
    return data.list_run_names()


def _apply_selection(names: list[str]) -> None:
    """Honour a selection requested by a page (new run) or by the URL (?run=NAME), only for
    names that are runs directly under the runs root."""
    pending = st.session_state.pop(PENDING_KEY, None)
    wanted = st.query_params.get("run") if RUN_KEY not in st.session_state else None
    if wanted:
        try:
            safe_run_path(wanted, data.root())
        except RunError as exc:
            st.warning(str(exc))
            wanted = None
    for name in (pending, wanted):
        if name and name in names:
            st.session_state[RUN_KEY] = name
            break
    if st.session_state.get(RUN_KEY) not in names:
        st.session_state[RUN_KEY] = names[0] if names else None


def select_run(name: str) -> None:
    """Ask the sidebar to select `name` on the next rerun (pages cannot set the widget directly)."""
    st.session_state[PENDING_KEY] = name


def run_status(run: RunDir) -> None:
    """Live progress while the run's process lives (with Cancel), Resume for a stopped run."""
    if launcher.active_pid(run.path) is not None:
        _live_status(str(run.path))
    else:
        _static_status(run)


@st.fragment(run_every=LIVE_REFRESH_S)
def _live_status(run_path: str) -> None:
    run = RunDir(run_path)
    try:
        stages = data.stages(run)
    except RunError as exc:
        st.error(str(exc))
        return
    active = launcher.active_pid(run.path) is not None
    _rerun_on_change(run_path, active, stages)
    current = next((s for s in stages if s["status"] == "running"), None)
    finished = sum(s["status"] == "done" for s in stages)
    if current is None:
        st.caption(f":material/hourglass_top: starting… ({finished}/{len(stages)} stages done)")
        st.progress(finished / len(stages))
    else:
        info = current.get("info") or {}
        phase = info.get("phase") or info.get("group") or ""
        st.caption(f":material/hourglass_top: **{current['name']}** ({finished + 1}/{len(stages)}) {phase}")
        st.progress(float(current.get("progress") or 0.0))
    if st.button("Cancel run", key="cancel", help="Stops the process; finished stages are kept and the run resumes."):
        try:
            launcher.cancel(run.path)
        except RunError as exc:
            st.error(str(exc), icon=WARNING)
        else:
            st.rerun()


def _rerun_on_change(run_path: str, active: bool, stages: list[dict]) -> None:
    """Rerun the whole page when a stage finishes or the process ends, so results fill in."""
    signature = (run_path, active, tuple(s["status"] for s in stages))
    previous = st.session_state.get("_live_signature")
    st.session_state["_live_signature"] = signature
    if previous is not None and previous[0] == run_path and previous != signature:
        st.rerun()


def _static_status(run: RunDir) -> None:
    summary = data.run_summary(run)
    if summary == "done":
        try:
            seconds = sum(s.get("seconds") or 0 for s in data.stages(run))
        except RunError:
            seconds = 0
        st.caption(f":material/check_circle: finished: all stages done in {figures.format_seconds(seconds)}")
        return
    if summary == "damaged":
        st.warning("This run's manifest is damaged; see the page for details.")
        return
    try:
        stages = data.stages(run)
    except RunError:
        return
    finished = sum(s["status"] == "done" for s in stages)
    failed = next((s for s in stages if s["status"] == "failed"), None)
    if failed:
        st.error(f"{failed['name']} failed: {failed.get('error') or 'see run.log'}")
    else:
        st.caption(f":material/pause_circle: stopped after {finished}/{len(stages)} stages; finished stages are kept.")
    if st.button("Resume run", key="resume", help="Runs the remaining stages in the background."):
        try:
            launcher.resume(run.path)
        except (RunError, ConfigError, OSError) as exc:
            st.error(str(exc))
        else:
            time.sleep(0.2)
            st.rerun()
    tail = launcher.log_tail(run.path)
    if tail:
        with st.expander("run.log"):
            st.code(tail, language=None)


# --------------------------------------------------------------------------- the selected run


def selected_run() -> RunDir:
    """The run picked in the sidebar; with none, explain how to get one and stop the page."""
    name = st.session_state.get(RUN_KEY)
    if name:
        try:
            return RunDir(safe_run_path(name, data.root()))
        except RunError as exc:
            st.error(str(exc), icon=WARNING)
            st.stop()
    no_runs()
    st.stop()


def no_runs() -> None:
    root = data.root()
    path = root / launcher.DEFAULT_RUN
    st.info(f"No runs under `{root}` yet. Start the default run (digits, about 25 s on a 2-core CPU) here, or "
            f"in a terminal: `{CLI_HINT.format(path=path)}`. Set `PDIFF_RUNS` to look elsewhere.",
            icon=":material/info:")
    if st.button("Start the default run", type="primary", key="start_default"):
        try:
            launcher.launch(path)
        except (RunError, ConfigError, OSError) as exc:
            st.error(str(exc))
        else:
            select_run(launcher.DEFAULT_RUN)
            st.rerun()


def pipeline(run: RunDir) -> None:
    """The pipeline diagram with each stage's status and time, live while the run builds."""
    if launcher.active_pid(run.path) is not None:
        _live_pipeline(str(run.path))
    else:
        _pipeline_body(run)


@st.fragment(run_every=LIVE_REFRESH_S)
def _live_pipeline(run_path: str) -> None:
    _pipeline_body(RunDir(run_path), live=True)


def _pipeline_body(run: RunDir, live: bool = False) -> None:
    with guard(run):
        stages = data.stages(run)
        st.plotly_chart(figures.pipeline_diagram(stages), width="stretch", config={"displayModeBar": False},
                        key=f"pipeline-{run.name}")
        estimates = data.estimates(run) if live or any(s["status"] != "done" for s in stages) else {}
        curves = data.losses(run)
        if live and curves:
            st.plotly_chart(figures.loss_curves(curves), width="stretch", config={"displayModeBar": False},
                            key=f"losses-{run.name}")
        with st.expander("Stage details and times", expanded=live):
            st.dataframe(tables.stage_frame(stages, estimates), hide_index=True, width="stretch",
                         column_config={"expected": st.column_config.TextColumn(width="large")})
        if not live and curves:
            with st.expander("Training curves"):
                st.plotly_chart(figures.loss_curves(curves), width="stretch", key=f"losses-{run.name}")
