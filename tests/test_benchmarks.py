"""The benchmarks import in the package's layout, parse their arguments, and can fail.

No benchmark is run here (they take minutes): each script is imported and asked for `--help` in
one separate process (the scripts choose the OpenMP wait policy when imported, which must not
leak into this test process), and the shared target helper is tested on its own.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.targets import ALL_MET, CANNOT_RUN, MISSED, Check, Target, cannot_run, check, exit_code, no_target

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.stem for p in (REPO / "benchmarks").glob("*.py") if p.stem.startswith(("bench_", "gpu_")))


def _module_body(name: str) -> list[ast.stmt]:
    return ast.parse((REPO / "benchmarks" / f"{name}.py").read_text()).body


def _imports_torch(node: ast.stmt) -> bool:
    return isinstance(node, ast.Import) and any(a.name == "torch" for a in node.names)


TORCH_AT_TOP = [name for name in SCRIPTS if any(_imports_torch(n) for n in _module_body(name))]

HELP_ALL = """
import contextlib, importlib, io, json, sys
results = {}
for name in sys.argv[1:]:
    out = io.StringIO()
    try:
        module = importlib.import_module("benchmarks." + name)
        with contextlib.redirect_stdout(out):
            module.main(["--help"])
        results[name] = "main(['--help']) returned instead of printing the usage and exiting"
    except SystemExit as exc:
        results[name] = "ok" if exc.code in (0, None) and "usage:" in out.getvalue() else f"exit {exc.code}"
    except Exception as exc:
        results[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def help_results() -> dict[str, str]:
    """Each script imported and its `main(["--help"])` called, all in one fresh process (one torch import)."""
    result = subprocess.run([sys.executable, "-c", HELP_ALL, *SCRIPTS], cwd=REPO, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_script_imports_and_prints_its_usage(help_results: dict[str, str], name: str) -> None:
    assert help_results[name] == "ok"


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_script_exits_with_its_main_and_judges_with_the_helper(name: str) -> None:
    """A script that prints MISS must exit non-zero: its exit status is main's, decided by targets.py."""
    source = (REPO / "benchmarks" / f"{name}.py").read_text()
    assert "sys.exit(main())" in source
    assert "from benchmarks.targets import" in source
    assert "--threads auto" not in source  # the CLI takes a positive count only


@pytest.mark.parametrize("name", TORCH_AT_TOP)
def test_threads_are_chosen_before_a_module_level_torch_import(name: str) -> None:
    """libgomp reads its wait policy when torch loads it (pdiff/core/threads.py): a script that
    imports torch at the top (to run or time work in its own process) calls pdiff.configure_threads first."""
    body = _module_body(name)
    torch_line = next(n.lineno for n in body if _imports_torch(n))
    configure = [n.lineno for n in body if isinstance(n, ast.Expr) and "configure_threads" in ast.unparse(n)]
    assert configure and configure[0] < torch_line


def test_a_miss_gives_exit_code_1_and_all_met_gives_0(capsys: pytest.CaptureFixture[str]) -> None:
    fast = Target("seconds", "<=", 2.0)
    assert exit_code([check(fast, 1.5), check(fast, 2.0)]) == ALL_MET == 0
    assert exit_code([check(fast, 1.5), check(fast, 2.5)]) == MISSED == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].split()[-1] == "MISS" and "2.500" in lines[-2] and "<= 2" in lines[-2]
    assert lines[0].split()[-1] == "met"


def test_ranges_are_closed_and_nan_never_meets_a_target() -> None:
    spread = Target("spread ratio", "in", (0.85, 1.15))
    assert spread.met(0.85) and spread.met(1.15) and not spread.met(1.16)
    assert not spread.met(float("nan")) and not Target("gap", ">=", -1.0).met(float("nan"))
    assert Target("identical", "==", True).met(True) and not Target("identical", "==", True).met(False)
    assert Target("cpu share", "<", 10.0).met(9.99) and not Target("cpu share", "<", 10.0).met(10.0)


def test_a_label_tells_checks_of_one_target_apart() -> None:
    line = Check(Target("median slowdown (x)", "<=", 3.0), 2.1, label="default/chosen").line()
    assert line.split()[:4] == ["default/chosen:", "median", "slowdown", "(x)"] and line.endswith("met")


def test_a_target_that_cannot_be_judged_is_refused() -> None:
    with pytest.raises(ValueError):
        Target("spread", "in", 1.0)
    with pytest.raises(ValueError):
        Target("spread", "<=", (0.8, 1.2))
    with pytest.raises(ValueError):
        Target("spread", "in", (1.2, 0.8))
    with pytest.raises(ValueError):
        Target("spread", "~", 1.0)


def test_no_target_exits_0_and_cannot_run_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert no_target("numbers only") == 0
    assert cannot_run("no GPU") == CANNOT_RUN == 2
    assert exit_code([]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == ["no target: numbers only", "cannot run here: no GPU"]
