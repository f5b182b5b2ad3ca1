"""Threads: nothing happens at import; `configure_threads` chooses the wait policy from the load before
torch loads (the user's own setting wins), the count comes from the request alone, a launcher hands its
choice down, a stage sets its count and restores the caller's, and every stage records who chose."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, micro_config

from pdiff.core import threads
from pdiff.core.runtime import stage_threads

CLEAN = {k: v for k, v in os.environ.items()
         if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "PDIFF_THREADS", threads.CHOICE_ENV)}


def python(code: str, env: dict | None = None) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                            check=True, env=CLEAN if env is None else env)
    return result.stdout.strip()


def test_importing_any_pdiff_module_changes_nothing_and_sleeps_nothing():
    """Every module of the package, imported in a fresh interpreter: the environment, torch's
    thread count and the thread choice are as before, and `threads.free_cores` (the only sleep)
    was never called."""
    code = ("import os, importlib, pkgutil, time\n"
            "before = dict(os.environ)\n"
            "import pdiff\n"
            "from pdiff.core import threads\n"
            "calls = []\n"
            "threads.free_cores = lambda *a, **k: calls.append(1)\n"
            "for m in pkgutil.walk_packages(pdiff.__path__, 'pdiff.'):\n"
            "    if not m.name.endswith('__main__'):\n"
            "        importlib.import_module(m.name)\n"
            "import torch\n"
            "print(dict(os.environ) == before, calls == [], torch.get_num_threads() == torch.get_num_threads(),\n"
            "      threads.current() is threads.NOT_CHOSEN)\n")
    assert python(code) == "True True True True"


def test_the_verdicts_old_name_is_the_same_pure_module():
    """`import pdiff.verdict` (the name before the wings) still works, changes nothing, and is
    `pdiff.judge.verdict` itself."""
    code = ("import os; e = dict(os.environ); import pdiff, pdiff.verdict; import pdiff.judge.verdict as v; "
            "print(dict(os.environ) == e, pdiff.verdict is v)")
    assert python(code) == "True True"


def test_import_pdiff_is_cheap():
    """`import pdiff` loads no torch: the public names are imported on first use."""
    assert python("import sys, pdiff; print('torch' in sys.modules, pdiff.RunConfig.__module__)") == \
        "False pdiff.core.config"


def test_configure_threads_before_torch_chooses_a_policy_from_the_load():
    show = ("from pdiff.core import threads; threads.free_cores = lambda window=0.25: {free}; "
            "c = threads.configure_threads(); import os; "
            "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'), '|', c.policy, '|', c.chosen_by)")
    idle = python(show.format(free=2.0))
    assert idle == "None 10000 | spin 10000 (idle at start) | pdiff.configure_threads()"
    busy = python(show.format(free=0.3))
    assert busy.startswith("PASSIVE None | PASSIVE (busy at start: 0.3 of ")


def test_the_users_own_policy_wins_and_a_late_call_says_it_is_too_late():
    show = ("from pdiff.core import threads; c = threads.configure_threads(); import os; "
            "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'), '|', c.policy)")
    assert python(show, CLEAN | {"OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE None | OMP_WAIT_POLICY=ACTIVE (set by the user)"
    assert python(show, CLEAN | {"GOMP_SPINCOUNT": "5"}) == "None 5 | GOMP_SPINCOUNT=5 (set by the user)"
    late = python("import torch; " + show)
    assert late == "None None | libgomp's default (torch was imported before the policy could be set)"


def test_a_second_call_keeps_the_policy_and_updates_the_count():
    code = ("from pdiff.core import threads; threads.free_cores = lambda window=0.25: 2.0; "
            "a = threads.configure_threads(); b = threads.configure_threads(3, chosen_by='other'); "
            "print(a.policy == b.policy, b.count, b.chosen_by)")
    assert python(code) == "True 3 pdiff.configure_threads()"  # not "set by the user" the second time


def test_a_launched_run_adopts_the_launchers_choice():
    launcher = threads.ThreadChoice(None, "spin 10000 (idle at start)", "the app")
    env = {k: v for k, v in threads.child_environment(launcher).items() if k in CLEAN or k == threads.CHOICE_ENV}
    env |= {"GOMP_SPINCOUNT": "10000"}  # what the launcher's process set, inherited
    code = "from pdiff.core import threads; c = threads.configure_threads(); print(c.policy, '|', c.chosen_by)"
    assert python(code, env) == "spin 10000 (idle at start) | the app"


@pytest.mark.parametrize("free,cores,expected", [
    (2.0, 2, ("GOMP_SPINCOUNT", "10000")), (1.3, 2, ("GOMP_SPINCOUNT", "10000")), (1.2, 2, ("OMP_WAIT_POLICY", "PASSIVE")),
    (0.0, 2, ("OMP_WAIT_POLICY", "PASSIVE")), (15.5, 16, ("GOMP_SPINCOUNT", "10000")), (14.0, 16, ("OMP_WAIT_POLICY", "PASSIVE")),
    (None, 4, ("GOMP_SPINCOUNT", "10000")),  # unknown (no /proc/stat): as if idle
])
def test_busy_machines_wait_passively_idle_ones_spin_briefly(free, cores, expected):
    variable, value, description = threads.decide_policy(free, cores)
    assert (variable, value) == expected
    assert description.startswith("PASSIVE (busy at start" if value == "PASSIVE" else "spin 10000 (idle")


@pytest.mark.parametrize("flag,env,expected", [
    (None, {}, None), ("3", {}, 3), (None, {"PDIFF_THREADS": "2"}, 2),
    (None, {"OMP_NUM_THREADS": "1"}, 1), ("4", {"PDIFF_THREADS": "2", "OMP_NUM_THREADS": "1"}, 4),
])
def test_requested_threads_flag_then_environment(monkeypatch, flag, env, expected):
    monkeypatch.delenv("PDIFF_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert threads.requested_threads(flag) == expected


def test_bad_thread_requests_are_refused(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("PDIFF_THREADS", raising=False)
    for bad in ("0", "auto", "-2"):
        with pytest.raises(ValueError, match="threads must be a positive count"):
            threads.requested_threads(bad)
    from pdiff import cli

    assert cli.main(["run", "--out", str(tmp_path / "x"), "--threads", "many"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: threads must be a positive count, got 'many'") and "\n" not in err
    assert not (tmp_path / "x").exists()


def test_a_stage_sets_its_count_and_restores_the_callers():
    before = torch.get_num_threads()
    other = 2 if before != 2 else 1
    with stage_threads(other) as count:
        assert count == other == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with stage_threads(None) as count:
        assert count == before
    with pytest.raises(RuntimeError), stage_threads(other):
        raise RuntimeError("a failing stage restores too")
    assert torch.get_num_threads() == before


def test_free_cores_is_the_idle_share_of_all_cores(monkeypatch):
    samples = iter([(1000, 4000), (1150, 4200)])  # 150 of 200 jiffies idle: 3/4 of every core
    monkeypatch.setattr(threads, "_cpu_times", lambda: next(samples))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    assert threads.free_cores(0.0) == pytest.approx(1.5)
    monkeypatch.setattr(threads, "_cpu_times", lambda: None)  # no /proc/stat: unknown
    assert threads.free_cores(0.0) is None


def test_the_command_line_records_who_chose_and_runs_with_torchs_default_count(tmp_path):
    """`python -m pdiff run` with nothing pinned: the default path, which the other tests (one
    pinned thread) never take. Every stage records the count, the policy and who chose them."""
    from conftest import MICRO_OVERRIDES, as_set_args

    out = tmp_path / "run"
    subprocess.run([sys.executable, "-m", "pdiff", "run", "--out", str(out), "--quiet", "--until", "autoencoder",
                    *as_set_args(MICRO_OVERRIDES)], cwd=REPO, check=True, timeout=300, env=CLEAN,
                   capture_output=True)
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["threads"]["chosen_by"] == "the command line"
    default = int(python("import torch; print(torch.get_num_threads())"))
    for stage in ("collect", "autoencoder"):
        record = manifest["stages"][stage]["threads"]
        assert record["count"] == default and record["chosen_by"] == "the command line"
        assert record["policy"].startswith(("spin 10000", "PASSIVE (busy at start"))
    assert micro_config().seed == manifest["config"]["seed"]


@pytest.mark.slow
def test_a_runs_artifacts_are_identical_idle_and_beside_two_busy_loops(tmp_path):
    """The same command twice with torch's default count: once on a quiet machine (threads spin),
    once beside two busy processes (threads wait passively). Only the wait policy may differ."""
    from conftest import TINY_OVERRIDES, as_set_args
    from safetensors.torch import load_file

    def run(out, busy: bool) -> dict:
        loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 if busy else 0)]
        try:
            subprocess.run([sys.executable, "-m", "pdiff", "run", "--out", str(out), "--quiet",
                            *as_set_args(TINY_OVERRIDES | {"autoencoder.steps": 100, "diffusion.steps": 100})],
                           cwd=REPO, check=True, timeout=900, env=CLEAN | {"PDIFF_STORE": "off"}, capture_output=True)
        finally:
            for loop in loops:
                loop.kill()
                loop.wait()
        return json.loads((out / "run.json").read_text())

    quiet, busy = run(tmp_path / "quiet", False), run(tmp_path / "busy", True)
    assert busy["threads"]["policy"].startswith("PASSIVE (busy at start")
    assert quiet["stages"]["collect"]["threads"]["count"] == busy["stages"]["collect"]["threads"]["count"]
    for name in sorted(p.name for p in (tmp_path / "quiet").glob("*.safetensors")):
        a, b = load_file(tmp_path / "quiet" / name), load_file(tmp_path / "busy" / name)
        assert a.keys() == b.keys(), name
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}: {key}"


def test_the_apps_launcher_hands_its_choice_to_the_runs_it_starts(monkeypatch, tmp_path):
    """A run started from the app adopts the app's wait policy and records it as the app's, not
    as a policy "set by the user" (the server's own environment variables are inherited)."""
    from app import launcher

    seen = {}

    class Recorder:
        pid = 424242

        def __init__(self, cmd, **kwargs):
            seen["env"] = kwargs["env"]

    monkeypatch.setattr(threads, "_choice", threads.ThreadChoice(None, "spin 10000 (idle at start)", "the app"))
    monkeypatch.setattr(launcher.subprocess, "Popen", Recorder)
    monkeypatch.setattr(launcher, "_starttime", lambda pid: 0)
    (tmp_path / "run").mkdir()
    launcher._start(tmp_path / "run", ["true"])
    handed = json.loads(seen["env"][threads.CHOICE_ENV])
    assert handed["chosen_by"] == "the app" and handed["policy"] == "spin 10000 (idle at start)"
