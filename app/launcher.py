"""Background runs for the app: launch `python -m pdiff run`, find it again, cancel it.

A run launched from the app is the same command a user types (`python -m pdiff run --out DIR`),
started detached in its own process group (a page reload or a server restart does not stop it),
with its output in `DIR/run.log`. `DIR/app-run.json` records the process id, its start time and
its command, so any later page view finds the process again; a run started from a terminal is
found from `progress.json`'s pid. Cancelling sends SIGTERM to the process group: the CLI turns it
into an interruption (its own handler, so it works even where the process inherited an ignored
SIGINT, as every background job of a non-interactive shell does), the pipeline records the stage as
interrupted and the run resumes at that stage when launched again. A pid is
only signalled while it is still the recorded process (same start time and command line), so a
recycled pid or a forged `app-run.json` in a received run is never signalled. The log is
appended only if it is a regular file of the run (never through a link), and is read back as
text. No Streamlit here, so it is testable alone.
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pdiff.core import safety
from pdiff.core.config import with_overrides
from pdiff.core.errors import RunError
from pdiff.core.presets import preset
from pdiff.core.rundir import PROGRESS, RunDir, write_json
from pdiff.core.threads import child_environment
from pdiff.pipeline.runner import prepare_run

PID_FILE = "app-run.json"
LOG_FILE = "run.log"
DEFAULT_RUN = "digits"
REPO_ROOT = Path(__file__).resolve().parents[1]

_children: dict[int, subprocess.Popen] = {}  # processes this server started (reaped with poll())
_launching = threading.Lock()  # two sessions (tabs) starting the same run: one process


def autostart_default() -> bool:
    """$PDIFF_AUTOSTART=0 (or false/no/off) turns the automatic first run off."""
    return os.environ.get("PDIFF_AUTOSTART", "1").strip().lower() not in ("0", "false", "no", "off")


def command(path: Path, preset_name: str | None = DEFAULT_RUN, overrides: dict[str, Any] | None = None) -> list[str]:
    """The CLI command that builds the run at `path` (no preset: resumes it with its stored config)."""
    cmd = [sys.executable, "-m", "pdiff", "run", "--out", str(path)]
    cmd += ["--preset", preset_name] if preset_name else []
    cmd += ["--quiet"]
    for key, value in (overrides or {}).items():
        cmd += ["--set", f"{key}={json.dumps(list(value) if isinstance(value, tuple) else value)}"]
    return cmd


def launch(path: str | os.PathLike, preset_name: str = DEFAULT_RUN, overrides: dict[str, Any] | None = None) -> int:
    """Validate, create the run's manifest, and start the pipeline detached; returns the pid.

    The manifest is written here (same `prepare_run` the CLI calls) so the run is listed at once
    and a config clash with an existing run is reported before any process starts.
    """
    path = Path(path).resolve()
    safety.check_run_path(path)
    config = with_overrides(preset(preset_name), overrides or {})  # ConfigError on bad values
    with _launching:
        if RunDir(path).exists():
            raise RunError(f"a run named {path.name} already exists; choose another name, or resume it from the sidebar")
        prepare_run(path, config)
        return _start(path, command(path, preset_name, overrides))


def resume(path: str | os.PathLike) -> int:
    """Finish a stopped run with its stored config (`python -m pdiff run --out DIR`); returns the pid."""
    path = Path(path).resolve()
    safety.check_run_path(path)
    with _launching:
        if active_pid(path) is not None:
            raise RunError(f"{path.name} is already running")
        if not RunDir(path).exists():
            raise RunError(f"{path.name} is not a run (no run.json)")
        return _start(path, command(path, None))


def _start(path: Path, cmd: list[str]) -> int:
    """Popen in a new session (its own process group), output appended to run.log (a regular file
    of the run, never a link), pid, start time and command recorded."""
    safety.check_run_path(path)
    env = child_environment() | {"PYTHONUNBUFFERED": "1"}  # the run adopts the app's thread choice
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    with safety.open_append(path / LOG_FILE) as log:
        log.write(f"\n$ {safety.printable(shlex.join(cmd))}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=os.getcwd(), env=env, start_new_session=True, close_fds=True)
    _children[proc.pid] = proc
    write_json(path / PID_FILE, {"pid": proc.pid, "pgid": proc.pid, "started": time.time(), "command": cmd,
                                 "starttime": _starttime(proc.pid)})
    return proc.pid


def is_alive(pid: int) -> bool:
    """True while the process runs (a finished child of this server is reaped, not a zombie)."""
    if pid in _children:
        return _children[pid].poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    if state in ("Z", "X"):
        try:
            os.waitpid(pid, os.WNOHANG)  # our child from before a module reload: reap it
        except ChildProcessError:
            pass
        return False
    return True


def _argv(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None  # no /proc (not Linux): trust the pid
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]]


def _starttime(pid: int) -> int | None:
    """When the process started (clock ticks since boot): with the pid, names one process for good."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(safety.read_bytes(path, 2**20))
        return data if isinstance(data, dict) else None
    except (OSError, RunError, ValueError, RecursionError):
        return None


def _is_recorded_process(record: dict, path: Path) -> bool:
    """The pid in app-run.json is still the process this app started for `path`: alive, with the
    recorded start time and command line (a recycled pid has another start time or command)."""
    pid = record.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or not is_alive(pid):
        return False
    argv = _argv(pid)
    if argv is None:
        return True  # no /proc: trust the pid
    started = record.get("starttime")
    if started is not None and started != _starttime(pid):
        return False
    command = record.get("command")
    if isinstance(command, list) and started is not None:
        return argv == command or argv == []  # [] for a moment while the new process execs
    return "pdiff" in " ".join(argv) and str(path.resolve()) in " ".join(argv)  # a record from before start times


def active_pid(path: str | os.PathLike) -> int | None:
    """The pid of the live pipeline process building this run, or None.

    First the app's pid file (a run launched here, also after a reload or server restart), then
    progress.json's pid (a run started from a terminal). A pid counts only while the process
    lives and its command line is a pdiff run, so a recycled pid is not mistaken for the run.
    """
    path = Path(path)
    record = _read_json(path / PID_FILE)
    if record and _is_recorded_process(record, path):
        return record["pid"]
    progress = _read_json(path / PROGRESS)
    pid = progress.get("pid") if progress else None
    valid = isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 and pid != os.getpid()
    return pid if valid and is_alive(pid) and _builds(pid, path) else None


def _builds(pid: int, path: Path) -> bool:
    """Whether process `pid` is a `pdiff run` whose run directory is `path` (its --out, or the
    default folder under its runs root, resolved from its own working directory)."""
    argv = _argv(pid)
    if argv is None:
        return True  # no /proc: trust the pid
    if "pdiff" not in " ".join(argv) or "run" not in argv:
        return False
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        out = next((a.split("=", 1)[1] for a in argv if a.startswith("--out=")), None)
        if out is None and "--out" in argv[:-1]:
            out = argv[argv.index("--out") + 1]
        if out is not None:
            return (cwd / out).resolve() == path.resolve()
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        root = next((e[len(b"PDIFF_RUNS="):].decode(errors="replace") for e in environ
                     if e.startswith(b"PDIFF_RUNS=")), "runs")
        return (cwd / root).resolve() == path.resolve().parent
    except (OSError, ValueError):
        return False


def cancel(path: str | os.PathLike, timeout: float = 10.0) -> bool:
    """Stop the run's process: SIGTERM (the stage is marked interrupted, the run stays resumable),
    then SIGKILL if it has not exited after `timeout` seconds. Returns whether one was running.
    The process group is signalled only when it is the one this app started (the recorded pid
    leads it); otherwise only the verified pid is."""
    path = Path(path)
    pid = active_pid(path)
    if pid is None:
        return False
    record = _read_json(path / PID_FILE) or {}
    group = None
    if record.get("pid") == pid and record.get("pgid") == pid:  # our own detached session
        try:
            group = pid if os.getpgid(pid) == pid else None
        except OSError:
            group = None

    def send(sig: int) -> None:
        try:
            os.killpg(group, sig) if group else os.kill(pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            raise RunError(f"process {pid} of {path.name} belongs to another user; it was not stopped") from None

    send(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid):
            _record_stopped(path, "stopped by Cancel before it recorded its interruption")
            return True
        time.sleep(0.1)
    send(signal.SIGKILL)
    deadline = time.monotonic() + 5
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not is_alive(pid):
        _record_stopped(path, "killed by Cancel: it did not stop on SIGTERM in time")
    return True


def _record_stopped(path: Path, why: str) -> None:
    """After Cancel the process is gone, so no stage of the run is running any more. A run
    records its own interruption on SIGTERM; one killed before it could (it did not stop within
    the timeout, e.g. on a machine too busy to let it) still says 'running': such stages are
    marked interrupted here, as the run itself would have, so it says what happened and resumes."""
    run = RunDir(path)
    try:
        stages = run.manifest().get("stages", {})
    except (RunError, OSError):
        return  # a damaged manifest is reported as such where the run is opened
    for name, record in stages.items():
        if isinstance(record, dict) and record.get("status") == "running":
            run.update_stage(name, status="interrupted", error=why)


def log_tail(path: str | os.PathLike, lines: int = 15) -> str:
    """The last lines of the run's log (where a failed launch explains itself), as text: only a
    regular file of the run is read (a link is refused), and only its last 64 KiB."""
    try:
        text = safety.read_tail(Path(path) / LOG_FILE).decode(errors="replace")
    except FileNotFoundError:
        return ""
    except RunError as exc:
        return str(exc)
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])
