"""Hostile and careless input (issue 14): runs received from others, a server started from
anywhere, training that blows up, sizes without bounds, odd paths, odd manifests, signals,
permissions, a foreign pid, and bring-your-own registrations.

Every case must end in a one-line error or a correct result, never a traceback, and nothing
read or written inside a run may follow a link out of it.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from app_fixtures import app_run, clone_run  # noqa: F401
from conftest import MICRO_OVERRIDES, REPO, as_set_args, micro_config
from test_app import open_app, show

from app import launcher
from pdiff import cli
from pdiff.core import plugins, safety
from pdiff.core.divergence import Diverged, LossWatch, check_finite
from pdiff.core.errors import RunError
from pdiff.core.rundir import RunDir, list_runs, read_json, safe_run_path, save_tensors, write_json
from pdiff.pipeline.runner import prepare_run, run_pipeline, run_stage
from pdiff.pipeline.status import stage_states

PAGES = ["overview", "accuracy", "latent", "similarity", "denoising", "new_run", "compare"]
SECRET = "export SECRET=outside-the-run\n"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str, *needles: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def strict_json(path: Path):
    """Parse as strict JSON: NaN or Infinity tokens fail."""
    def refuse(token):
        raise AssertionError(f"{path.name} holds the non-JSON token {token}")
    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory):
    """A finished seconds-long run (read only: copy it to change it)."""
    return run_pipeline(tmp_path_factory.mktemp("hostile") / "micro", micro_config())


@pytest.fixture()
def root(app_run, tmp_path):  # noqa: F811
    """A runs root holding a private copy of the tiny app run."""
    clone_run(app_run, tmp_path, "tiny")
    return tmp_path


def _partial(path: Path) -> RunDir:
    """Make a copied run stop before analyse, so the sidebar offers Resume and shows run.log."""
    manifest = read_json(path / "run.json")
    manifest["stages"]["analyse"] = {"status": "pending"}
    write_json(path / "run.json", manifest)
    return RunDir(path)


# --------------------------------------------------------------------------- 1. received runs: links and names


def test_symlinked_run_log_is_neither_shown_nor_appended_to(monkeypatch, root, tmp_path_factory):
    outside = tmp_path_factory.mktemp("home") / ".bashrc"
    outside.write_text(SECRET)
    run = _partial(clone_run(root / "tiny", root, "received"))
    (run.path / "run.log").symlink_to(outside)

    tail = launcher.log_tail(run.path)
    assert "SECRET" not in tail and "symbolic link" in tail
    with pytest.raises(RunError, match="symbolic link"):
        launcher.resume(run.path)
    assert outside.read_text() == SECRET  # nothing appended through the link
    assert launcher.active_pid(run.path) is None

    at = open_app(monkeypatch, root, run="received")
    assert at.sidebar.selectbox(key="run").value == "received"
    shown = " ".join(c.value for c in at.sidebar.code)
    assert "SECRET" not in shown and "symbolic link" in shown
    at.sidebar.button(key="resume").click().run()
    assert not at.exception
    assert any("symbolic link" in e.value for e in at.sidebar.error)
    assert outside.read_text() == SECRET


def test_hard_linked_run_log_is_not_appended_to(root, tmp_path_factory):
    outside = tmp_path_factory.mktemp("home") / ".profile"
    outside.write_text(SECRET)
    run = _partial(clone_run(root / "tiny", root, "received"))
    os.link(outside, run.path / "run.log")
    with pytest.raises(RunError, match="hard link"):
        launcher.resume(run.path)
    assert outside.read_text() == SECRET


def test_symlinked_artifacts_and_manifest_are_refused_on_read(capsys, monkeypatch, root, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    run = clone_run(root / "tiny", root, "received")
    for name in ("evaluation.safetensors", "analysis.safetensors"):  # valid files, but outside the run
        (run / name).rename(elsewhere / name)
        (run / name).symlink_to(elsewhere / name)
    with pytest.raises(RunError, match="symbolic link"):
        RunDir(run).load("evaluation.safetensors")
    one_line_error(run_cli(capsys, "report", str(run))[2], "analysis.safetensors", "symbolic link")

    at = open_app(monkeypatch, root, run="received")
    for page in ("overview", "accuracy", "latent", "similarity", "denoising"):
        show(at, page)
        assert any("symbolic link" in e.value for e in at.error), page
    at.sidebar.selectbox(key="run").set_value("tiny").run()
    show(at, "accuracy")
    assert not at.error

    manifest = elsewhere / "run.json"
    (run / "run.json").rename(manifest)
    (run / "run.json").symlink_to(manifest)
    with pytest.raises(RunError, match="symbolic link"):
        RunDir(run).manifest()
    (run / "progress.json").unlink(missing_ok=True)
    (run / "progress.json").symlink_to(manifest)
    assert RunDir(run).progress() is None
    fifo = run / "run.log"
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)  # reading a FIFO would block the page forever
    assert "FIFO" in launcher.log_tail(run)


def test_writes_replace_a_planted_link_instead_of_writing_through_it(tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text(SECRET)
    run = tmp_path / "run"
    run.mkdir()
    (run / "progress.json").symlink_to(outside)
    (run / "zoo.safetensors").symlink_to(outside)
    RunDir(run).write_progress("collect", 1, 2)
    save_tensors(run / "zoo.safetensors", {"x": torch.zeros(2)})
    assert outside.read_text() == SECRET
    assert not (run / "progress.json").is_symlink() and not (run / "zoo.safetensors").is_symlink()
    assert RunDir(run).progress()["done"] == 1


def test_control_characters_in_run_names_are_refused(capsys, monkeypatch, root):
    evil = "evil\nexport PWNED=1"
    clone_run(root / "tiny", root, evil)
    assert [r.name for r in list_runs(root)] == ["tiny"]
    for name in (evil, "esc\x1b[2J", "rtl\u202etxt"):
        with pytest.raises(RunError, match="control character"):
            safe_run_path(name, root)
    code, out, err = run_cli(capsys, "run", "--out", str(root / "new\nrun"), "--quiet")
    assert code == 2
    one_line_error(err, "control character")
    assert not (root / "new\nrun").exists() and "run directory" not in out
    with pytest.raises(RunError, match="control character"):
        launcher.launch(root / "bad\rname", "digits", {})
    with pytest.raises(RunError, match="control character"):
        prepare_run(root / "tab\there", micro_config())

    at = open_app(monkeypatch, root)
    assert at.sidebar.selectbox(key="run").options == ["tiny"]
    assert any("not opened" in c.value and "control character" in c.value for c in at.sidebar.caption)


def test_the_log_records_the_command_as_quoted_text(monkeypatch, tmp_path):
    """A shell-looking run name stays one quoted word of the log line, never a command."""
    started = []

    class FakePopen:
        def __init__(self, cmd, **kwargs):
            started.append(cmd)
            self.pid = os.getpid()

        def poll(self):
            return None

    monkeypatch.setattr(launcher.subprocess, "Popen", FakePopen)
    path = tmp_path / "a;touch $(pwned)"
    path.mkdir()
    launcher._start(path, launcher.command(path, None))
    line = (path / "run.log").read_text().strip().splitlines()[-1]
    assert line.startswith("$ ") and "'" + str(path) + "'" in line
    assert started[0][5] == str(path)  # an argument list, no shell
    launcher._children.clear()


def test_symlinked_run_folder_is_skipped_and_the_app_keeps_working(monkeypatch, root, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    clone_run(root / "tiny", elsewhere, "theirs")
    (root / "newest").symlink_to(elsewhere / "theirs", target_is_directory=True)
    os.utime(elsewhere / "theirs" / "run.json")  # the newest run under the root
    assert [r.name for r in list_runs(root)] == ["tiny"]
    with pytest.raises(RunError, match="symbolic link"):
        safe_run_path("newest", root)
    at = open_app(monkeypatch, root)
    assert at.sidebar.selectbox(key="run").options == ["tiny"]
    assert any("newest" in c.value and "symbolic link" in c.value for c in at.sidebar.caption)
    for page in PAGES:
        show(at, page)
        assert not at.error, page
    at = open_app(monkeypatch, root, run="newest")
    assert any("symbolic link" in w.value for w in at.sidebar.warning)
    assert at.sidebar.selectbox(key="run").value == "tiny"


# --------------------------------------------------------------------------- 2. the server's address


HOSTILE_CONFIG = '[server]\naddress = "0.0.0.0"\n\n[browser]\ngatherUsageStats = true\n'


def _hostile_cwd(tmp_path: Path) -> tuple[Path, dict]:
    """A working directory and a HOME whose Streamlit configs ask for every interface and stats."""
    cwd, home = tmp_path / "elsewhere", tmp_path / "home"
    for folder in (cwd, home):
        (folder / ".streamlit").mkdir(parents=True)
        (folder / ".streamlit" / "config.toml").write_text(HOSTILE_CONFIG)
    env = dict(os.environ, HOME=str(home), PDIFF_RUNS=str(tmp_path / "runs"), PDIFF_AUTOSTART="0")
    env = {k: v for k, v in env.items() if not k.startswith("STREAMLIT_")}
    return cwd, env


def test_script_level_config_wins_over_global_and_project_but_not_flags(tmp_path):
    cwd, env = _hostile_cwd(tmp_path)
    probe = textwrap.dedent(f"""
        import json, sys
        from streamlit import config
        from streamlit.web import bootstrap
        config._main_script_path = {str(REPO / "app" / "main.py")!r}  # what `streamlit run` sets
        bootstrap.load_config_options(flag_options=json.loads(sys.argv[1]))
        print(json.dumps([config.get_option("server.address"), config.get_option("browser.gatherUsageStats")]))
    """)
    def effective(flags: dict) -> list:
        out = subprocess.run([sys.executable, "-c", probe, json.dumps(flags)], cwd=cwd, env=env, capture_output=True,
                             text=True, timeout=120, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])
    assert effective({}) == ["127.0.0.1", False]
    assert effective({"server_address": "0.0.0.0"})[0] == "0.0.0.0"  # an explicit request still counts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> list[str]:
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return [line.split()[3] for line in out.splitlines() if line.strip()]


@pytest.mark.slow
def test_server_started_from_another_folder_listens_on_loopback_only(tmp_path):
    if subprocess.run(["which", "ss"], capture_output=True, check=False).returncode:
        pytest.skip("no `ss` to list listening sockets")
    cwd, env = _hostile_cwd(tmp_path)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(REPO / "app" / "main.py"),
                             "--server.port", str(port)], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _listening(port) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        addresses = _listening(port)
        assert addresses == [f"127.0.0.1:{port}"], addresses
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


# --------------------------------------------------------------------------- 3. training that blows up


@pytest.mark.parametrize("key,stage,phase", [
    ("classifier.lr", "collect", "classifier training"),
    ("collect.lr", "collect", "checkpoint collection"),
    ("autoencoder.lr", "autoencoder", "training"),
    ("diffusion.lr", "diffusion", "training"),
])
def test_a_huge_learning_rate_stops_its_stage_in_one_line(capsys, micro_run, tmp_path, key, stage, phase):
    path = tmp_path / "run"
    if stage == "collect":
        args = ["run", "--out", str(path), "--quiet", *as_set_args(MICRO_OVERRIDES)]
    else:  # redo only the stage under test, from a finished run
        path = clone_run(micro_run.path, tmp_path, "run")
        args = ["run", "--out", str(path), "--quiet"]
    before = {p.name: p.read_bytes() for p in path.glob("*.safetensors")}
    code, _, err = run_cli(capsys, *args, "--set", f"{key}=1000")
    assert code == 2
    line = one_line_error(err, f"{stage}: {phase} blew up at step ", f"lower {key} (now 1000)",
                          f"--set {key}=100")
    assert "nothing was saved as done" in line
    manifest = strict_json(path / "run.json")
    assert manifest["stages"][stage]["status"] == "failed"
    assert manifest["stages"][stage]["error"] == line[len("error: "):][:500]
    states = stage_states(RunDir(path))  # what reads it: never run, or the old run's results, now stale
    assert not any(states[s].current for s in (stage, "sample", "evaluate", "analyse"))
    producer = {"collect": "zoo.safetensors", "autoencoder": "autoencoder.safetensors",
                "diffusion": "denoiser.safetensors"}[stage]
    after = path / producer
    assert not after.exists() or after.read_bytes() == before.get(producer)  # no NaN weights written


def test_a_loss_spike_or_nan_is_caught_at_its_step():
    watch = LossWatch("training", 10, "autoencoder.lr")
    watch.step(0, torch.tensor(2.0))
    watch.check(1, 2.0)
    for step, value in [(1, 1.5), (2, 3e7), (3, 0.5)]:  # a spike that "recovers" is still caught
        watch.step(step, torch.tensor(value))
    with pytest.raises(Diverged, match=r"training blew up at step 3 of 10: the loss left the finite range"):
        watch.check(4, 0.5)
    watch = LossWatch("training", 10)
    watch.step(0, torch.tensor(float("nan")))
    with pytest.raises(Diverged, match="at step 1 of 10: the loss is nan"):
        watch.check(1, float("nan"))
    watch = LossWatch("training", 10)
    watch.step(0, torch.tensor(1.0))
    with pytest.raises(Diverged, match="parameter w is no longer finite"):
        watch.check(1, 1.0, [("w", torch.tensor([1.0, float("inf")]))])


def test_a_non_finite_artifact_is_never_saved_as_done(monkeypatch, micro_run, tmp_path):
    run = RunDir(clone_run(micro_run.path, tmp_path, "run"))
    before = run.file("baselines.safetensors").read_bytes()
    import pdiff.pipeline.stages.baselines

    nan = {"gaussian": torch.tensor([[1.0, float("nan")]])}
    monkeypatch.setattr(pdiff.pipeline.stages.baselines, "make_baselines", lambda *a, **k: nan)
    with pytest.raises(RunError) as info:
        run_stage(run, micro_config(), "baselines", torch.device("cpu"))
    message = str(info.value)
    assert message.startswith("baselines: its result blew up: baselines.safetensors would hold 1 non-finite value")
    assert "\n" not in message
    assert run.stage("baselines")["status"] == "failed"
    assert run.file("baselines.safetensors").read_bytes() == before
    with pytest.raises(Diverged):
        check_finite("generated.safetensors", {"params": torch.tensor([float("inf")])})
    check_finite("generated.safetensors", {"steps": torch.tensor([1, 2])})  # integers: nothing to check


def test_run_json_is_strict_json_with_undefined_metrics_as_null(tmp_path):
    write_json(tmp_path / "run.json", {"metrics": {"a": float("nan"), "b": [float("inf"), 1.5]}, "c": 2})
    assert strict_json(tmp_path / "run.json") == {"metrics": {"a": None, "b": [None, 1.5]}, "c": 2}
    save_tensors(tmp_path / "x.safetensors", {"x": torch.zeros(1)}, {"scorecard": {"zoo": {"iou": float("nan")}}})
    assert RunDir(tmp_path).load("x.safetensors")[1] == {"scorecard": {"zoo": {"iou": None}}}


# --------------------------------------------------------------------------- 4. sizes and floats


@pytest.mark.parametrize("setting,needles", [
    ("sample.num_models=1000000000", ["sample.num_models", "above its limit"]),
    ("baselines.num_models=1000000000", ["baselines.num_models", "above its limit"]),
    ("analysis.bootstrap=1000000000", ["analysis.bootstrap", "above its limit"]),
    ("classifier.batch_size=1000000000", ["classifier.batch_size", "above its limit"]),
    ("autoencoder.batch_size=1000000000", ["autoencoder.batch_size", "above its limit"]),
    ("diffusion.batch_size=1000000000", ["diffusion.batch_size", "above its limit"]),
    ("evaluate.batch_size=1000000000000", ["evaluate.batch_size", "above its limit"]),
    ("autoencoder.latent_dim=1000000000", ["autoencoder.latent_dim", "above its limit"]),
    ("diffusion.timesteps=1000000000", ["diffusion.timesteps", "above its limit"]),
    ("collect.num_checkpoints=1000000000", ["collect.num_checkpoints", "above its limit"]),
    ("seed=1180591620717411303424", ["'seed'", "above its limit"]),
    ("seed=-1", ["'seed'", ">= 0"]),
    ("autoencoder.channels=[0]", ["autoencoder.channels", "from 1 to"]),
    ("diffusion.channels=[16,100000]", ["diffusion.channels", "from 1 to"]),
    ("autoencoder.lr=NaN", ["autoencoder.lr", "finite", "nan"]),
    ("sample.eta=NaN", ["sample.eta", "finite"]),
    ("diffusion.lr=Infinity", ["diffusion.lr", "finite", "inf"]),
    ("collect.lr=-Infinity", ["collect.lr", "finite"]),
    ("baselines.noise_sigmas=[0.1,NaN]", ["baselines.noise_sigmas", "finite"]),
    ("autoencoder.input_noise=1e400", ["autoencoder.input_noise", "finite"]),
])
def test_bad_sizes_and_floats_are_refused_before_run_json(capsys, tmp_path, setting, needles):
    code, _, err = run_cli(capsys, "run", "--out", str(tmp_path / "x"), "--quiet", "--set", setting)
    assert code == 2
    one_line_error(err, *needles)
    assert not (tmp_path / "x").exists()


def test_sizes_that_together_exceed_memory_are_refused_before_run_json(capsys, micro_run, tmp_path):
    big = ["--set", "sample.num_models=100000", "--set", "baselines.num_models=100000"]
    code, _, err = run_cli(capsys, "run", "--out", str(tmp_path / "x"), "--quiet", *big)
    assert code == 2
    one_line_error(err, "GiB", "more than this machine's", "sample.num_models")
    assert not (tmp_path / "x").exists()
    run = clone_run(micro_run.path, tmp_path, "existing")  # an existing run keeps its stored config
    before = (run / "run.json").read_bytes()
    assert run_cli(capsys, "run", "--out", str(run), "--quiet", *big)[0] == 2
    assert (run / "run.json").read_bytes() == before


# --------------------------------------------------------------------------- 5. user files and odd paths


def test_an_existing_folder_that_is_not_a_run_is_never_written_into(capsys, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "run.log").write_text("my notes")
    (folder / "zoo.safetensors").write_text("not yours")
    code, _, err = run_cli(capsys, "run", "--out", str(folder), "--quiet")
    assert code == 2
    one_line_error(err, "is not a pdiff run", "never written into")
    assert sorted(p.name for p in folder.iterdir()) == ["run.log", "zoo.safetensors"]
    assert (folder / "zoo.safetensors").read_text() == "not yours"


def test_odd_out_paths_are_one_line_errors(capsys, tmp_path, monkeypatch):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    one_line_error(run_cli(capsys, "run", "--out", str(a_file), "--quiet")[2], "is a file")
    one_line_error(run_cli(capsys, "run", "--out", str(a_file / "run"), "--quiet")[2], "cannot write the run")
    one_line_error(run_cli(capsys, "run", "--out", "", "--quiet")[2], "--out is empty")
    one_line_error(run_cli(capsys, "run", "--out", "  ", "--quiet")[2], "--out is empty")
    assert a_file.read_text() == "x"

    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: make the folder refuse as a read-only one would
        real_mkdir = Path.mkdir

        def refuse(self, *args, **kwargs):
            if locked in self.parents:
                raise PermissionError(13, "Permission denied", str(self))
            return real_mkdir(self, *args, **kwargs)

        monkeypatch.setattr(Path, "mkdir", refuse)
    else:
        locked.chmod(0o555)
    code, _, err = run_cli(capsys, "run", "--out", str(locked / "run"), "--quiet")
    assert code == 2
    one_line_error(err, "cannot write the run", "Permission denied")


@pytest.mark.parametrize("flag", ["--force", "--until"])
def test_unknown_stage_names_write_nothing(capsys, tmp_path, flag):
    code, _, err = run_cli(capsys, "run", "--out", str(tmp_path / "x"), "--quiet", flag, "nope")
    assert code == 2
    one_line_error(err, "unknown stage 'nope'", "collect")
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- 6. the app and odd runs


ODD_MANIFESTS = {
    "stage-string": lambda m: m["stages"].update(collect="done"),
    "stages-list": lambda m: m.update(stages=["collect", "autoencoder"]),
    "config-string": lambda m: m.update(config="digits"),
    "metrics-list": lambda m: m["stages"]["evaluate"].update(metrics=[1, 2]),
    "seconds-string": lambda m: m["stages"]["collect"].update(seconds="fast"),
    "versions-list": lambda m: m.update(versions=["torch"]),
}


def _odd_runs(root: Path) -> list[str]:
    names = []
    for name, edit in ODD_MANIFESTS.items():
        path = clone_run(root / "tiny", root, name)
        manifest = read_json(path / "run.json")
        edit(manifest)
        write_json(path / "run.json", manifest)
        names.append(name)
    clone_run(root / "tiny", root, "truncated")
    text = (root / "truncated" / "run.json").read_text()
    (root / "truncated" / "run.json").write_text(text[: len(text) // 2])
    clone_run(root / "tiny", root, "json-list")
    (root / "json-list" / "run.json").write_text("[1, 2, 3]")
    return names + ["truncated", "json-list"]


def test_odd_run_json_shapes_give_a_message_on_every_page(monkeypatch, root):
    names = _odd_runs(root)
    at = open_app(monkeypatch, root, run=names[0])
    for name in names:
        at.sidebar.selectbox(key="run").set_value(name).run()
        assert not at.exception, (name, [e.value for e in at.exception])
        for page in PAGES:
            show(at, page)
            messages = [e.value for e in at.error] + [w.value for w in at.sidebar.warning]
            if page not in ("new_run", "compare"):
                assert any("run.json is damaged" in m for m in messages), (name, page, messages)
    at.sidebar.selectbox(key="run").set_value("tiny").run()
    for page in PAGES:
        show(at, page)
        messages = [e.value for e in at.error]
        if page == "compare":  # it offers every run: the damaged ones say so
            assert all("run.json is damaged" in m for m in messages), messages
        else:
            assert not messages, (page, messages)


def test_odd_artifact_metadata_gives_messages_not_tracebacks(capsys, monkeypatch, root):
    run = RunDir(clone_run(root / "tiny", root, "odd"))
    for name, edit in (("analysis.safetensors", {"scorecard": {"zoo": "oops"}, "groups": "zoo"}),
                       ("evaluation.safetensors", {"groups": {"a": 1}}), ("zoo.safetensors", {"layout": [1, 2]})):
        tensors, meta = run.load(name)
        run.save(name, tensors, meta | edit)
    at = open_app(monkeypatch, root, run="odd")
    for page in PAGES:
        show(at, page)
    one_line_error(run_cli(capsys, "report", str(run.path))[2], "analysis.safetensors has no scorecard")


def test_odd_run_json_shapes_are_one_line_errors_in_the_cli(capsys, root):
    for name in _odd_runs(root):
        for argv in (["report", str(root / name)], ["run", "--out", str(root / name), "--quiet"]):
            code, _, err = run_cli(capsys, *argv)
            assert code == 2, (name, argv)
            one_line_error(err, "run.json")


@pytest.mark.slow
def test_sigterm_marks_the_stage_interrupted_and_the_run_resumes(tmp_path):
    path = tmp_path / "run"
    settings = dict(MICRO_OVERRIDES, **{"collect.num_checkpoints": 4000})  # a collect that lasts
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "pdiff", "run", "--out", str(path), "--quiet", *as_set_args(settings)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while (RunDir(path).progress() or {}).get("stage") != "collect" and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "terminated" in err and "resume" in err and "Traceback" not in err
    record = RunDir(path).stage("collect")
    assert record["status"] == "interrupted" and "Terminated" in record["error"]
    resumed = subprocess.run(cmd + ["--until", "collect"], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert RunDir(path).stage_done("collect")


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_files_respect_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        write_json(tmp_path / "run.json", {"a": 1})
        save_tensors(tmp_path / "zoo.safetensors", {"x": torch.zeros(1)})
        with safety.open_append(tmp_path / "run.log") as log:
            log.write(b"x")
    finally:
        os.umask(old)
    for name in ("run.json", "zoo.safetensors", "run.log"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask, name


def _sleeper(tmp_path: Path, path: Path, new_session: bool = False) -> subprocess.Popen:
    """A process whose command line mentions pdiff and the run (as a real run's would); it exits
    cleanly on SIGTERM, as the CLI does."""
    code = "import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\ntime.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code, "-m", "pdiff", "run", "--out", str(path)], cwd=tmp_path,
                            start_new_session=new_session)
    while not launcher._argv(proc.pid):  # /proc shows the command line once exec is through
        time.sleep(0.01)
    return proc


def test_cancel_refuses_a_recycled_or_foreign_pid(monkeypatch, tmp_path):
    path = tmp_path / "run"
    path.mkdir()
    signalled = []
    monkeypatch.setattr(os, "killpg", lambda pgid, sig: signalled.append(("group", pgid, sig)))
    foreign = subprocess.Popen(["sleep", "60"])
    other = _sleeper(tmp_path, tmp_path / "someone-else")
    ours = _sleeper(tmp_path, path)
    try:
        argv = launcher._argv(ours.pid)
        # a pid that is no pdiff run at all
        write_json(path / launcher.PID_FILE, {"pid": foreign.pid, "pgid": foreign.pid, "command": argv})
        assert launcher.active_pid(path) is None and launcher.cancel(path) is False
        # a recycled pid: same command line, another start time
        write_json(path / launcher.PID_FILE, {"pid": ours.pid, "pgid": ours.pid, "command": argv,
                                              "starttime": launcher._starttime(ours.pid) + 1})
        assert launcher.active_pid(path) is None and launcher.cancel(path) is False
        # progress.json (a terminal run) naming a pdiff process that builds another folder
        (path / launcher.PID_FILE).unlink()
        write_json(path / "progress.json", {"stage": "collect", "done": 1, "total": 2, "pid": other.pid})
        assert launcher.active_pid(path) is None and launcher.cancel(path) is False
        # the real process, but a forged group (the init process's): only the pid is signalled
        write_json(path / launcher.PID_FILE, {"pid": ours.pid, "pgid": 1, "command": argv,
                                              "starttime": launcher._starttime(ours.pid)})
        assert launcher.active_pid(path) == ours.pid
        assert launcher.cancel(path, timeout=20) is True
        assert ours.wait(timeout=20) == 0 and signalled == []
        assert foreign.poll() is None and other.poll() is None  # untouched
    finally:
        for proc in (foreign, other, ours):
            proc.kill()
            proc.wait()


def test_cancel_stops_the_process_group_it_started(tmp_path):
    path = tmp_path / "run"
    path.mkdir()
    ours = _sleeper(tmp_path, path, new_session=True)
    try:
        write_json(path / launcher.PID_FILE, {"pid": ours.pid, "pgid": ours.pid, "command": launcher._argv(ours.pid),
                                              "starttime": launcher._starttime(ours.pid)})
        assert launcher.active_pid(path) == ours.pid
        assert launcher.cancel(path, timeout=20) is True
        assert ours.wait(timeout=20) == 0
    finally:
        ours.kill()
        ours.wait()


def test_cancel_records_the_interruption_a_killed_run_could_not(tmp_path):
    """A run that does not stop on SIGTERM within the timeout is killed; its running stage must
    not stay 'running' (nothing runs it any more): the launcher marks it interrupted."""
    path = tmp_path / "run"
    RunDir(path).write_manifest({"stages": {"collect": {"status": "done"}, "autoencoder": {"status": "running"}}})
    ready = tmp_path / "ignoring"
    code = (f"import pathlib, signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            f"pathlib.Path({str(ready)!r}).touch()\ntime.sleep(60)")
    stubborn = subprocess.Popen([sys.executable, "-c", code, "-m", "pdiff", "run", "--out", str(path)], cwd=tmp_path,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:  # SIGTERM is ignored from here on
            time.sleep(0.01)
        write_json(path / launcher.PID_FILE, {"pid": stubborn.pid, "pgid": stubborn.pid,
                                              "command": launcher._argv(stubborn.pid),
                                              "starttime": launcher._starttime(stubborn.pid)})
        assert launcher.cancel(path, timeout=1) is True
        stubborn.wait(timeout=10)  # (its exit status is gone: the launcher reaps what it kills)
        stages = RunDir(path).manifest()["stages"]  # marked only on the SIGKILL path: SIGTERM was ignored
        assert stages["autoencoder"]["status"] == "interrupted" and "killed" in stages["autoencoder"]["error"]
        assert stages["collect"] == {"status": "done"}  # a finished stage stays finished
    finally:
        stubborn.kill()
        stubborn.wait()


# --------------------------------------------------------------------------- 7. bring your own registrations


PLUGIN = '''
import torch
from collections import OrderedDict
from torch import nn
import pdiff

gen = torch.Generator().manual_seed(0)
x_train, y_train = torch.randn(256, 1, 8, 8, generator=gen), torch.randint(0, 3, (256,), generator=gen)
x_test, y_test = torch.randn(64, 1, 8, 8, generator=gen), torch.randint(0, 3, (64,), generator=gen)
pdiff.register_tensors("hostile-data", x_train, y_train, x_test, y_test)

def tiny_net(input_shape, num_classes):
    return nn.Sequential(OrderedDict(flatten=nn.Flatten(), fc=nn.Linear(64, 16), norm=nn.LayerNorm(16),
                                     act=nn.ReLU(), head=nn.Linear(16, num_classes)))

pdiff.register_classifier("hostile-net", tiny_net)
'''


@pytest.fixture()
def plugin_file(tmp_path):
    path = tmp_path / "my_plugin.py"
    path.write_text(PLUGIN)
    yield path
    from pdiff.core.registry import CLASSIFIERS, DATASETS

    DATASETS.pop("hostile-data", None)
    CLASSIFIERS.pop("hostile-net", None)
    plugins._loaded.pop(str(path), None)


BYO = ["--set", "data.name=hostile-data", "--set", "classifier.arch=hostile-net", "--set", "classifier.epochs=1",
       "--set", "collect.target=last-norm:1,head.*", "--until", "collect"]


def test_unregistered_names_fail_before_anything_is_written(capsys, monkeypatch, tmp_path, plugin_file):
    out = tmp_path / "byo"
    code, _, err = run_cli(capsys, "run", "--out", str(out), "--quiet", *as_set_args(MICRO_OVERRIDES), *BYO)
    assert code == 2
    one_line_error(err, "unknown dataset 'hostile-data'", "--plugin", "PDIFF_PLUGINS")
    assert not out.exists()

    code, _, err = run_cli(capsys, "run", "--out", str(out), "--quiet", "--plugin", str(plugin_file),
                           *as_set_args(MICRO_OVERRIDES), *BYO)
    assert code == 0, err
    assert RunDir(out).stage_done("collect")
    from pdiff.core.registry import CLASSIFIERS, DATASETS

    DATASETS.pop("hostile-data")  # a later process without the registrations
    CLASSIFIERS.pop("hostile-net")
    plugins._loaded.clear()
    before = (out / "run.json").read_bytes()
    code, _, err = run_cli(capsys, "run", "--out", str(out), "--quiet")
    assert code == 2
    one_line_error(err, "unknown dataset 'hostile-data'", "registrations live in the process")
    assert (out / "run.json").read_bytes() == before  # no stage started, nothing recorded

    monkeypatch.setenv(plugins.ENV, str(plugin_file))
    code, out_text, err = run_cli(capsys, "run", "--out", str(out), "--quiet", "--until", "collect")
    assert code == 0 and "plan: collect reused" in out_text, err


def test_a_plugin_that_cannot_load_is_a_one_line_error(capsys, tmp_path):
    one_line_error(run_cli(capsys, "run", "--plugin", "no_such_module_xyz", "--out", str(tmp_path / "x"))[2],
                   "plugin 'no_such_module_xyz' could not be loaded", "ModuleNotFoundError")
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('my plugin is broken\\nsecond line')")
    one_line_error(run_cli(capsys, "run", "--plugin", str(broken), "--out", str(tmp_path / "x"))[2],
                   "RuntimeError: my plugin is broken")
    assert not (tmp_path / "x").exists()


def test_the_app_loads_plugins_from_the_environment(monkeypatch, root, plugin_file):
    monkeypatch.setenv(plugins.ENV, str(plugin_file))
    calls = []
    monkeypatch.setattr(launcher, "launch", lambda path, preset="digits", overrides=None: calls.append(overrides) or 1)
    at = show(open_app(monkeypatch, root), "new_run")
    at.text_area(key="new_extra_digits").set_value("data.name=hostile-data\nclassifier.arch=hostile-net")
    at.button[0].click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert calls and calls[0]["data.name"] == "hostile-data"

    monkeypatch.setenv(plugins.ENV, "no_such_module_xyz")
    at = open_app(monkeypatch, root)
    assert any("no_such_module_xyz" in e.value for e in at.sidebar.error)
    show(at, "overview")
    assert not at.main.error
