"""The run-directory contract: stages declared once, artifact names written once, no import loops,
every config key accounted for, stale results never shown as current."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, copy_run

from pdiff.core import artifacts
from pdiff.core.config import RunConfig, config_to_dict, flat_config
from pdiff.core.errors import RunError
from pdiff.pipeline.report import metrics_table
from pdiff.pipeline.runner import load_run_config, reset_from, run_pipeline
from pdiff.pipeline.status import stage_states
from pdiff.pipeline.table import ALL_STAGES, NOT_RESULTS, PRODUCER, STAGE_NAMES, STAGES, pipeline, upstream

MODULES = sorted(".".join(p.relative_to(REPO / "pdiff").with_suffix("").parts) for p in (REPO / "pdiff").rglob("*.py")
                 if p.stem not in ("__init__", "__main__"))


def test_every_module_imports_on_its_own_in_a_fresh_interpreter():
    """Each module is imported first thing in a clean module table: an import loop held
    together by import order would fail here."""
    script = ("import importlib, sys\n"
              "import torch\n"  # stays loaded: only pdiff's own modules are dropped between imports
              f"for name in {MODULES!r}:\n"
              "    for key in [k for k in sys.modules if k == 'pdiff' or k.startswith('pdiff.')]:\n"
              "        del sys.modules[key]\n"
              "    importlib.import_module('pdiff.' + name)\n"
              "print('ok')\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_artifact_names_are_written_once():
    names = [v for k, v in vars(artifacts).items() if k.isupper() and isinstance(v, str)]
    assert len(names) == len(set(names)) == len(artifacts.DESCRIPTIONS)
    pattern = re.compile("|".join(re.escape(f'"{n}"') for n in names))
    offenders = [f"{p.relative_to(REPO)}:{i}" for folder in ("pdiff", "app", "benchmarks")
                 for p in (REPO / folder).rglob("*.py") if p.name != "artifacts.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []


def test_stages_read_only_what_earlier_stages_write():
    written: set[str] = set()
    for stage in STAGES:
        assert set(stage.reads) <= written, stage.name
        assert not set(stage.writes) & written, stage.name  # each artifact has one producer
        written |= set(stage.writes)
    assert written == set(artifacts.DESCRIPTIONS)
    assert upstream(next(s for s in STAGES if s.name == "evaluate")) == ["collect", "sample", "baselines"]
    assert PRODUCER[artifacts.GENERATED] == "sample"


def test_every_pipeline_reads_only_what_its_earlier_stages_write_or_lacks_the_generator():
    """Each of the four pipelines (collect or import, with or without a generator) orders its stages
    so that a stage's inputs come from an earlier stage; a run without a generator lacks exactly the
    generator's artifacts, and its evaluate stage reads only the zoo's."""
    for zoo_dir in ("", "some/folder"):
        for generate in (True, False):
            stages = pipeline(zoo_dir, generate)
            written: set[str] = set()
            for stage in stages:
                assert not set(stage.writes) & written, stage.name
                written |= set(stage.writes)
            missing = set(artifacts.DESCRIPTIONS) - written
            assert missing == (set() if generate else {artifacts.AUTOENCODER, artifacts.DENOISER, artifacts.GENERATED,
                                                        artifacts.BASELINES, artifacts.DYNAMICS})
            evaluate = next(s for s in stages if s.name == "evaluate")
            assert upstream(evaluate, stages) == ([stages[0].name] + (["sample", "baselines"] if generate else []))


def test_every_config_key_is_read_by_a_stage_or_declared_irrelevant():
    """A key no stage declares would change nothing's fingerprint: results would be reused
    after it changed. Every key is either read by some stage or declared not to affect results."""
    keys = set(flat_config(config_to_dict(RunConfig())))
    declared = {k for k in keys for s in ALL_STAGES for d in s.config_keys if k == d or k.startswith(d + ".")}
    assert keys - declared == set(NOT_RESULTS)
    for stage in ALL_STAGES:  # a declared key that does not exist is a typo
        for d in stage.config_keys:
            assert any(k == d or k.startswith(d + ".") for k in keys), (stage.name, d)


@pytest.fixture()
def sampled_again(tiny_run, tmp_path):
    """A copy of the tiny run whose sampling was redone with other settings, and nothing after."""
    from conftest import tiny_config

    from pdiff.core.config import with_overrides

    run = copy_run(tiny_run, tmp_path / "resampled")
    run_pipeline(run.path, with_overrides(tiny_config(), {"sample.num_models": 7}), until="sample")
    return run


def test_results_made_from_older_inputs_are_stale(sampled_again):
    states = stage_states(sampled_again)
    assert states["sample"].current and states["baselines"].current and states["collect"].current
    assert states["evaluate"].stale == "its input sample was redone since"
    assert states["analyse"].stale == "its input sample was redone since"
    with pytest.raises(RunError, match=r"the evaluate stage of .* is stale \(its input sample was redone since\); "
                                       r"update it with python -m pdiff run --out"):
        metrics_table(sampled_again)


def test_report_never_shows_a_stale_analysis(sampled_again, capsys):
    """With the evaluation redone but not the analysis, report shows accuracy only and says why."""
    from pdiff import cli

    run_pipeline(sampled_again.path, load_run_config(sampled_again), until="evaluate")
    table = metrics_table(sampled_again)
    assert not table.complete and table.rows["generated"]["n"] == 7
    assert "max_iou_median" not in table.rows["generated"]
    assert "analyse stage is stale" in table.note
    assert cli.main(["report", str(sampled_again.path)]) == 0
    out, err = capsys.readouterr()
    assert "max IoU" not in out and "analyse stage is stale" in err


def test_a_pending_stage_and_an_unknown_one(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "pending")
    reset_from(run, "evaluate")
    states = stage_states(run)
    assert [states[s].status for s in STAGE_NAMES[-2:]] == ["pending", "pending"]
    with pytest.raises(RunError, match="the evaluate stage of .* is pending"):
        metrics_table(run)


def test_the_app_says_an_analysis_is_stale(sampled_again, monkeypatch):
    from streamlit.testing.v1 import AppTest

    run_pipeline(sampled_again.path, load_run_config(sampled_again), until="evaluate")
    monkeypatch.setenv("PDIFF_RUNS", str(Path(sampled_again.path).parent))
    monkeypatch.setenv("PDIFF_AUTOSTART", "0")
    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=60)
    at.query_params["run"] = sampled_again.name
    at.run()
    at.switch_page("views/similarity.py").run()
    assert not at.exception
    assert any("**analyse** stage is stale" in w.value for w in at.warning)
    assert not at.get("plotly_chart")  # nothing from the stale analysis is drawn


# --------------------------------------------------------------------------- the contract, enforced


def test_a_stage_that_reads_an_undeclared_config_key_is_stopped():
    from pdiff.core.config import RunConfig
    from pdiff.pipeline.contract import ConfigView, ContractError
    from pdiff.pipeline.table import BY_NAME, readable_keys

    view = ConfigView(RunConfig(), readable_keys(BY_NAME["baselines"]), "baselines")
    assert view.baselines.num_models == 100 and view.autoencoder.latent_dim == 16  # its own, and upstream's
    assert view.data.root == "data"  # keys that change no result are readable by every stage
    with pytest.raises(ContractError, match="stage 'baselines' read config key 'diffusion'"):
        view.diffusion.steps  # noqa: B018  (the baselines do not depend on the denoiser)
    with pytest.raises(ContractError, match="'sample'"):
        view.sample  # noqa: B018
    with pytest.raises(ContractError, match="tried to change"):
        view.seed = 3


def test_a_stage_that_loads_an_undeclared_artifact_is_stopped(tiny_run):
    from pdiff.pipeline.contract import ContractError, RunView

    view = RunView(tiny_run, (artifacts.ZOO,), (artifacts.AUTOENCODER,), "autoencoder")
    assert "params" in view.load(artifacts.ZOO)[0]
    with pytest.raises(ContractError, match="stage 'autoencoder' tried to load evaluation.safetensors"):
        view.load(artifacts.EVALUATION)
    with pytest.raises(ContractError, match="tried to save zoo.safetensors"):
        view.save(artifacts.ZOO, {})


def test_every_stage_runs_within_its_contract(tiny_run):
    """The tiny run's stages all ran through the views: had one read past its declaration, the
    session's run would have failed. Its record names the code it ran."""
    for stage in STAGES:
        code = tiny_run.stage(stage.name)["inputs"]["code"]
        assert stage.run.__module__.replace(".", "/") + ".py" in code
        assert all(path.startswith("pdiff/") for path in code)


def test_code_versions_follow_the_imports_and_ignore_docstrings():
    from pdiff.pipeline.table import BY_NAME

    analyse, evaluate, collect = (set(BY_NAME[s].code) for s in ("analyse", "evaluate", "collect"))
    assert "pdiff/judge/metrics.py" in analyse and "pdiff/judge/fidelity.py" in analyse
    assert "pdiff/judge/metrics.py" not in evaluate | collect  # the metrics make only the analysis
    assert "pdiff/generator/denoisers.py" not in collect  # collecting a zoo builds no generator


def test_editing_the_metrics_code_makes_the_analysis_stale_and_the_plan_says_why(tmp_path):
    """A copy of the package, one function of its metrics module edited: `python -m pdiff run
    --out RUN` redoes the analysis alone and names the file (a docstring edit changes nothing)."""
    import shutil

    from conftest import MICRO_OVERRIDES, as_set_args

    copy = tmp_path / "repo"
    shutil.copytree(REPO / "pdiff", copy / "pdiff", ignore=shutil.ignore_patterns("__pycache__"))
    run = tmp_path / "run"
    env = {"PYTHONPATH": str(copy), "PDIFF_STORE": "off", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}

    def pdiff_run() -> str:
        result = subprocess.run([sys.executable, "-m", "pdiff", "run", "--out", str(run), "--quiet",
                                 *as_set_args(MICRO_OVERRIDES)], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=600, check=True)
        return next(line for line in result.stdout.splitlines() if line.startswith("plan:"))

    pdiff_run()
    metrics = copy / "pdiff" / "judge" / "metrics.py"
    text = metrics.read_text()
    metrics.write_text(text.replace('"""Percentage of values >= threshold', '"""Share of values >= threshold'))
    assert pdiff_run() == "plan: all 8 stages reused (nothing changed)"
    metrics.write_text(text.replace("return 100.0 * (values.detach().double() >= threshold)",
                                    "return 100.0 * (values.detach().double() >= threshold + 0.0)"))
    assert pdiff_run() == ("plan: collect, autoencoder, diffusion, sample, baselines, evaluate reused; "
                           "analyse run (its code changed: pdiff/judge/metrics.py); "
                           "dynamics run (its input analyse changed)")
