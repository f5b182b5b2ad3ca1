"""Thread settings: the wait policy is chosen from the machine's load before torch loads, the requested count is
parsed from the flag and the environment, and "auto" stays within the usable cores."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import REPO

from pdiff import threads


def test_importing_pdiff_first_chooses_a_wait_policy_unless_the_user_chose():
    def policy(code: str, env: dict) -> str:
        result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                                timeout=120, check=True, env=env)
        return result.stdout.strip()

    import os

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    show = ("import os; print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'), '|', "
            "pdiff.threads.wait_policy())")
    chosen = policy(f"import pdiff; {show}", env)
    assert chosen in ("PASSIVE None | PASSIVE", "None 10000 | spin 10000 (idle at start)") or \
        chosen.startswith("PASSIVE None | PASSIVE (busy at start: "), chosen
    assert policy(f"import pdiff; {show}", env | {"OMP_WAIT_POLICY": "ACTIVE"}) == \
        "ACTIVE None | OMP_WAIT_POLICY=ACTIVE (set by the user)"
    assert policy(f"import pdiff; {show}", env | {"GOMP_SPINCOUNT": "5"}) == "None 5 | GOMP_SPINCOUNT=5 (set by the user)"
    late = policy(f"import torch, pdiff; {show}", env)
    assert late == "None None | default (torch was loaded before pdiff)"  # too late to matter: not set, and said so


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
    (None, {}, None), ("3", {}, 3), ("auto", {}, "auto"), (None, {"PDIFF_THREADS": "2"}, 2),
    (None, {"OMP_NUM_THREADS": "1"}, 1), ("4", {"PDIFF_THREADS": "2", "OMP_NUM_THREADS": "1"}, 4),
    (None, {"PDIFF_THREADS": "auto", "OMP_NUM_THREADS": "1"}, "auto"),
])
def test_requested_threads_flag_then_environment(monkeypatch, flag, env, expected):
    monkeypatch.delenv("PDIFF_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert threads.requested_threads(flag) == expected


def test_bad_thread_requests_are_refused(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with pytest.raises(ValueError, match="positive count or 'auto'"):
        threads.requested_threads("0")
    from pdiff import cli

    assert cli.main(["run", "--out", str(tmp_path / "x"), "--threads", "many"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: threads must be a positive count or 'auto', got 'many'") and "\n" not in err
    assert not (tmp_path / "x").exists()


def test_auto_uses_the_free_cores_within_bounds(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(threads, "free_cores", lambda window=0.25: 0.2)  # a busy machine
        assert threads.apply("auto")["threads"] == 1
        monkeypatch.setattr(threads, "free_cores", lambda window=0.25: 64.0)  # more than we may use
        assert threads.apply("auto")["threads"] == threads.physical_cores()
        assert threads.apply(1) == {"threads": 1, "request": 1, "omp_wait_policy": threads.wait_policy()}
        assert threads.apply(None)["threads"] == 1  # None leaves the setting alone
    finally:
        torch.set_num_threads(before)


def test_free_cores_is_the_idle_share_of_all_cores(monkeypatch):
    samples = iter([(1000, 4000), (1150, 4200)])  # 150 of 200 jiffies idle: 3/4 of every core
    monkeypatch.setattr(threads, "_cpu_times", lambda: next(samples))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    assert threads.free_cores(0.0) == pytest.approx(1.5)
    monkeypatch.setattr(threads, "_cpu_times", lambda: None)  # no /proc/stat: unknown, all cores used
    assert threads.free_cores(0.0) is None and threads.auto_threads() == threads.physical_cores()


def test_torch_loaded_first_makes_unrequested_stages_take_the_idle_cores():
    """libgomp's long spin could not be shortened: a stage without a thread request takes no more
    threads than cores stood idle (here idle cores are faked), and a request still wins."""
    import os

    code = ("import torch; torch.set_num_threads(2); import pdiff; from pdiff import threads; "
            "threads.free_cores = lambda window=0.25: 0.2; "
            "print(threads.apply(None)['threads'], threads.apply(None)['request'], threads.apply(2)['threads'])")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         check=True, env=env).stdout.split()
    assert out == ["1", "auto", "2"]
    mine = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=True, env=env | {"GOMP_SPINCOUNT": "100"}).stdout.split()
    assert mine == ["2", "default", "2"]  # the user chose the spin: their thread count stands
