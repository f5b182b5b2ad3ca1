"""The stage contract: what a stage may read and write, enforced while it runs, and its code version.

A `Stage` declares the config keys it reads, the artifacts it reads and writes, and its function.
The pipeline turns the declaration into a fingerprint (fingerprint.py) and reuses a finished
result whose fingerprint matches, so a declaration that leaves something out would let a stale
result pass as current. Three things keep it honest:

- the stage function sees the config through a `ConfigView`: a key outside its own declared keys,
  those of the stages it reads from (their fingerprints cover them) and the keys that change no
  result raises `ContractError`;
- it sees the run through a `RunView`: loading an artifact it does not declare, or saving one it
  does not write, raises `ContractError`;
- its code version is not written by hand: `code_version` hashes the source of the stage's module
  and of every pdiff module it imports, directly or not (docstrings and comments left out), so
  editing, say, the metrics code makes every stored analysis stale, and the plan names the file.
"""
from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import torch

from ..core.artifacts import NAN_MEANS_UNDEFINED
from ..core.divergence import check_finite
from ..core.rundir import RunDir
from ..zoo.datasets import Dataset, load_dataset

StageProgress = Callable[[str, int, int, dict], None]  # (stage, done, total, info)
PACKAGE = Path(__file__).resolve().parents[1]  # the pdiff package folder


class ContractError(RuntimeError):
    """A stage read or wrote something it does not declare: a bug in the stage or its declaration."""


def covers(keys: tuple[str, ...], key: str) -> bool:
    """Whether dotted `key` is one of `keys` or inside a section among them."""
    return any(key == k or key.startswith(k + ".") for k in keys)


class ConfigView:
    """A read-only view of a config (or one of its sections) that lets a stage read only the keys
    in `allowed`; a section is handed out as another view when some allowed key lies inside it."""

    def __init__(self, config: Any, allowed: tuple[str, ...], stage: str, prefix: str = "") -> None:
        object.__setattr__(self, "_config", config)
        object.__setattr__(self, "_allowed", allowed)
        object.__setattr__(self, "_stage", stage)
        object.__setattr__(self, "_prefix", prefix)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._config, name)
        key = self._prefix + name
        if is_dataclass(value) and (covers(self._allowed, key) or any(k.startswith(key + ".") for k in self._allowed)):
            return ConfigView(value, self._allowed, self._stage, key + ".")
        if covers(self._allowed, key):
            return value
        raise ContractError(f"stage {self._stage!r} read config key {key!r}, which neither it nor a stage it reads "
                            f"from declares; add it to the stage's config_keys (pipeline/table.py)")

    def __setattr__(self, name: str, value: Any) -> None:
        raise ContractError(f"stage {self._stage!r} tried to change the config ({self._prefix}{name})")


class RunView:
    """The run directory as a stage sees it: only the artifacts it declares, read or written.

    `absent` are declared reads that no stage of this run makes (a run without a generator has no
    generated models): `has` says False for them and loading one is a contract error."""

    def __init__(self, run: RunDir, reads: tuple[str, ...], writes: tuple[str, ...], stage: str,
                 absent: tuple[str, ...] = ()) -> None:
        self._run, self._reads, self._writes, self._stage = run, reads, writes, stage
        self._absent = absent

    @property
    def path(self) -> Path:
        return self._run.path

    def _check(self, name: str, allowed: tuple[str, ...], verb: str) -> None:
        if name not in allowed:
            raise ContractError(f"stage {self._stage!r} tried to {verb} {name}, which it does not declare; "
                                f"declare it in its reads/writes (pipeline/table.py)")

    def file(self, name: str) -> Path:
        self._check(name, self._reads + self._writes, "open")
        return self._run.file(name)

    def has(self, name: str) -> bool:
        """Whether a declared input is made in this run and exists."""
        self._check(name, self._reads + self._writes, "look for")
        return name not in self._absent and self._run.file(name).exists()

    def load(self, name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        self._check(name, self._reads, "load")
        if name in self._absent:
            raise ContractError(f"stage {self._stage!r} tried to load {name}, which no stage of this run makes; "
                                f"ask has() first")
        return self._run.load(name)

    def save(self, name: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any] | None = None) -> None:
        self._check(name, self._writes, "save")
        self._run.save(name, tensors, meta)


@dataclass
class StageContext:
    """What a stage function gets: the run and the config as it may see them, the device,
    progress, and whether this process writes (under torchrun only rank 0 does)."""

    run: RunView
    config: ConfigView
    device: torch.device
    stage: str
    index: int
    report: StageProgress | None = None
    writer: bool = True
    cache: dict[str, Any] = field(default_factory=dict)  # loaded once per pipeline invocation (the dataset)

    @property
    def seed(self) -> int:
        """Per-stage seed: stages are reproducible on their own, in any process."""
        return self.config.seed * 1000 + self.index

    def progress(self, done: int, total: int, info: dict | None = None) -> None:
        if self.report is not None:
            self.report(self.stage, done, total, info or {})

    def save(self, name: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any] | None = None) -> None:
        if name not in NAN_MEANS_UNDEFINED:  # a NaN weight is never saved as a finished result
            check_finite(name, tensors)
        if self.writer:
            self.run.save(name, tensors, meta)

    def dataset(self) -> Dataset:
        if "dataset" not in self.cache:
            self.cache["dataset"] = load_dataset(self.config.data)
        return self.cache["dataset"]


@dataclass(frozen=True)
class Stage:
    """One stage's contract. `config_keys` are dotted keys or whole sections it reads; `reads`
    and `writes` are artifact names; `uses_data` adds the dataset's content and the classifier's
    identity to its fingerprint; `main_only` stages run on rank 0 alone under torchrun."""

    name: str
    run: Callable[[StageContext], dict[str, Any]]
    config_keys: tuple[str, ...]
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    uses_data: bool = False
    main_only: bool = False
    uses_files: bool = False

    @property
    def code(self) -> dict[str, str]:
        """{file: digest} of the code this stage runs (see `code_version`)."""
        return code_version(self.run.__module__)


# --------------------------------------------------------------------------- code versions


def code_version(module: str) -> dict[str, str]:
    """{path under pdiff/: digest} of `module`'s source and of every pdiff module it imports,
    directly or not. Docstrings and comments do not count: they change no result."""
    return {_relative(name): _digest(name) for name in sorted(_closure(module))}


@functools.cache
def _closure(module: str) -> frozenset[str]:
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += sorted(_imports(name))
    return frozenset(seen)


def _file(module: str) -> Path:
    parts = module.split(".")[1:]
    path = PACKAGE.joinpath(*parts)
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _relative(module: str) -> str:
    return str(_file(module).relative_to(PACKAGE.parent))


@functools.cache
def _tree(module: str) -> ast.Module:
    return ast.parse(_file(module).read_text(), filename=str(_file(module)))


@functools.cache
def _imports(module: str) -> frozenset[str]:
    """The pdiff modules (not packages) that `module` imports at any depth of its code."""
    package = module if _file(module).name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.ImportFrom):
            base = _resolve(package, node.module, node.level)
            if not base.startswith("pdiff"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if _is_module(sub) else base)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("pdiff.") and _is_module(alias.name)}
    return frozenset(name for name in found if _is_module(name))


def _resolve(package: str, name: str | None, level: int) -> str:
    if level == 0:
        return name or ""
    parts = package.split(".")
    base = parts[: len(parts) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _is_module(name: str) -> bool:
    """A pdiff module file (packages' __init__ files hold no code that makes results)."""
    return name.startswith("pdiff.") and _file(name).suffix == ".py" and _file(name).name != "__init__.py" \
        and _file(name).is_file()


@functools.cache
def _digest(module: str) -> str:
    tree = ast.parse(_file(module).read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body and \
                isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and \
                isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.blake2b(ast.dump(tree).encode(), digest_size=8).hexdigest()
