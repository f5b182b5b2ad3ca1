"""The package's layout, read from the source: wings whose imports point only down, no import
circles, and no import hidden inside a function to dodge one.

Wings, lowest first: core <- zoo <- generator <- judge <- pipeline <- the entry points on top
(cli, guide, export, ablation) <- the app. A module may import its own wing and the wings below.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO

WINGS = ("core", "zoo", "generator", "judge", "pipeline", "top", "app")
# Imports that stay inside a function, each for a reason that a module-level import cannot meet.
LOCAL_IMPORTS_ALLOWED = {
    ("pdiff.zoo.datasets", "sklearn.datasets"): "importing scikit-learn writes KMP_* variables into os.environ",
    ("pdiff.zoo.datasets", "sklearn.model_selection"): "the same: scikit-learn at import changes the environment",
    ("pdiff.judge.projection", "sklearn.decomposition"): "the same: scikit-learn at import changes the environment",
    ("pdiff.judge.projection", "numba"): "umap/numba take seconds to import and compile; only UMAP needs them",
    ("pdiff.judge.projection", "numba.core.registry"): "the same: loaded with numba, only for UMAP",
    ("pdiff.judge.projection", "umap"): "the same: umap-learn imports numba and scikit-learn",
    ("pdiff.zoo.mnist1d", "mnist1d.data"): "the mnist1d package imports matplotlib and requests at import",
    ("pdiff.zoo.mnist1d", "mnist1d.utils"): "the same package",
}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((REPO / "pdiff").rglob("*.py")) + sorted((REPO / "app").rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = modules()


def wing(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "app":
        return "app"
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in WINGS) else "top"


def resolve(module: str, node: ast.ImportFrom) -> list[str]:
    """The modules an ImportFrom names (a submodule where the imported name is one)."""
    is_package = MODULES[module].name == "__init__.py"
    if node.level:
        base_parts = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
        base = ".".join(base_parts + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    out = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        out.append(sub if sub in MODULES else base)
    return out


def imports(module: str) -> tuple[set[str], list[tuple[int, str]]]:
    """(project modules imported at module level, [(line, name)] of imports inside functions)."""
    tree = ast.parse(MODULES[module].read_text())
    top: set[str] = set()
    local: list[tuple[int, str]] = []
    for node in tree.body:
        targets = node.body if isinstance(node, ast.If) else node.body + node.handlers if isinstance(node, ast.Try) \
            else [node]
        for child in targets:
            top |= _named(module, child)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import):
                    local += [(inner.lineno, a.name) for a in inner.names]
                elif isinstance(inner, ast.ImportFrom):
                    names = resolve(module, inner) if inner.level else [inner.module or ""]
                    local += [(inner.lineno, n) for n in names]
    return top, local


def _named(module: str, node: ast.AST) -> set[str]:
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in MODULES}
    if isinstance(node, ast.ImportFrom):
        return {m for m in resolve(module, node) if m in MODULES}
    return set()


GRAPH = {m: imports(m)[0] - {m} for m in MODULES}


def test_imports_point_down_between_wings():
    upward = [f"{a} ({wing(a)}) imports {b} ({wing(b)})" for a, targets in GRAPH.items() for b in targets
              if WINGS.index(wing(b)) > WINGS.index(wing(a))]
    assert upward == []


def test_there_is_no_import_circle():
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_no_import_hides_inside_a_function():
    found = [f"{MODULES[m].relative_to(REPO)}:{line} imports {name}" for m in MODULES
             for line, name in imports(m)[1] if (m, name) not in LOCAL_IMPORTS_ALLOWED]
    assert found == []


def test_the_allow_list_names_real_local_imports():
    """An entry that no longer matches an import is stale: remove it."""
    used = {(m, name) for m in MODULES for _, name in imports(m)[1]}
    assert set(LOCAL_IMPORTS_ALLOWED) - used == set()


@pytest.mark.parametrize("module", ["pdiff.core.config", "pdiff.core.registry", "pdiff.core.errors"])
def test_config_imports_no_implementation(module):
    """Registries are looked up by name: the ground floor builds nothing it names."""
    assert {wing(m) for m in GRAPH[module]} <= {"core"}


def test_every_wing_is_a_package_with_a_docstring():
    for name in WINGS[:5]:
        init = REPO / "pdiff" / name / "__init__.py"
        assert init.is_file() and ast.get_docstring(ast.parse(init.read_text())), name


def test_builtin_registry_entries_resolve():
    from pdiff.core import registry

    for reg in (registry.DATASETS, registry.CLASSIFIERS, registry.AUTOENCODERS, registry.DENOISERS, registry.SAMPLERS):
        for name in reg.names():
            assert callable(reg.get(name)), (reg.kind, name)
