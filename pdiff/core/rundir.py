"""The run directory: the contract between library, CLI, app and notebooks.

Everything is safetensors + JSON, so a run received from someone else can be opened safely.
Every write goes to a temporary file that is renamed into place, so a crash never leaves half
a file behind (and a symbolic link planted in a received run is replaced, never written
through); every read opens only regular files, never a link (see safety.py). `run.json` is the
manifest: config, versions, seed, device and per-stage status, in strict JSON.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy
import safetensors
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from . import safety
from .errors import RunError

MANIFEST = "run.json"
PROGRESS = "progress.json"


def runs_root() -> Path:
    """Where runs live: `$PDIFF_RUNS`, else `runs/` in the working directory."""
    return Path(os.environ.get("PDIFF_RUNS", "runs"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a new file and rename it over `path` (a link at `path` is replaced, not followed);
    the file gets the permissions the umask allows, like any other new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), safety.file_mode())  # mkstemp makes 0600 whatever the umask
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    """Strict JSON (a NaN or infinite metric is written as null: undefined), atomically."""
    atomic_write_bytes(path, safety.dumps(data, indent=2, sort_keys=True).encode())


def read_json(path: Path) -> Any:
    """A JSON file inside a run: a regular file (never a link), parsed; one-line RunError otherwise."""
    shown = safety.printable(str(path))
    try:
        return json.loads(safety.read_bytes(path).decode())
    except FileNotFoundError:
        raise RunError(f"{shown} is missing; is this a pdiff run directory?") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise RunError(f"{shown} is damaged ({exc.__class__.__name__}); delete the run or rerun it with --force") \
            from None
    except OSError as exc:
        raise RunError(f"{shown} cannot be read ({exc.strerror or exc.__class__.__name__})") from None


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any] | None = None) -> None:
    """Write tensors (made contiguous, moved to CPU) plus JSON metadata, atomically."""
    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    metadata = {"pdiff": safety.dumps(meta or {})}
    atomic_write_bytes(path, save(clean, metadata=metadata))


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a safetensors artifact; a missing or truncated file raises a one-line `RunError`."""
    try:
        safety.check_regular(path)  # never follow a link out of the run
    except FileNotFoundError:
        raise RunError(f"{path.name} is missing from {path.parent}; the run is partial: "
                       f"rerun it (python -m pdiff run --out {path.parent}) to finish it") from None
    try:
        tensors = load_file(path)
        with safe_open(path, framework="pt") as handle:
            raw = (handle.metadata() or {}).get("pdiff", "{}")
        return tensors, json.loads(raw)
    except (SafetensorError, OSError, ValueError) as exc:
        raise RunError(f"{path} is damaged ({str(exc).splitlines()[0][:80]}); "
                       f"redo its stage with python -m pdiff run --out {path.parent} --force STAGE") from None


def versions() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "safetensors": safetensors.__version__}


class RunDir:
    """One run's folder: manifest access, stage bookkeeping and artifact paths."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    def file(self, name: str) -> Path:
        return self.path / name

    def has(self, name: str) -> bool:
        """Whether the run holds artifact `name`."""
        return self.file(name).exists()

    def exists(self) -> bool:
        return os.path.lexists(self.file(MANIFEST))  # a planted link still marks a run (and is refused on read)

    def manifest(self) -> dict[str, Any]:
        """The parsed run.json, checked to have the manifest's shape (a one-line RunError if not)."""
        manifest = read_json(self.file(MANIFEST))
        problem = manifest_problem(manifest)
        if problem:
            raise RunError(f"{safety.printable(str(self.file(MANIFEST)))} is damaged ({problem}); "
                           f"delete the run or choose another --out")
        return manifest

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json(self.file(MANIFEST), manifest)

    def stage(self, stage: str) -> dict[str, Any]:
        return self.manifest().get("stages", {}).get(stage, {"status": "pending"})

    def stage_done(self, stage: str) -> bool:
        return self.stage(stage).get("status") == "done"

    def update_stage(self, stage: str, **fields: Any) -> None:
        manifest = self.manifest()
        manifest.setdefault("stages", {}).setdefault(stage, {}).update(fields)
        self.write_manifest(manifest)

    def save(self, name: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any] | None = None) -> None:
        save_tensors(self.file(name), tensors, meta)

    def load(self, name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return load_tensors(self.file(name))

    def write_progress(self, stage: str, done: int, total: int, info: dict[str, Any] | None = None,
                       history: dict[str, Any] | None = None) -> None:
        """progress.json: the current stage's progress, plus the losses so far (`history`, optional)."""
        write_json(self.file(PROGRESS), {"stage": stage, "done": done, "total": total, "info": info or {},
                                         "time": time.time(), "pid": os.getpid(), "history": history or {}})

    def progress(self) -> dict[str, Any] | None:
        """The running stage's progress, or None when there is none (or it is not readable)."""
        try:
            data = json.loads(safety.read_bytes(self.file(PROGRESS), 2**20))
        except (OSError, RunError, ValueError, RecursionError):
            return None
        numbers = isinstance(data, dict) and all(
            isinstance(data.get(k), (int, float)) and not isinstance(data.get(k), bool) for k in ("done", "total"))
        if not numbers or not isinstance(data.get("stage"), str) or not isinstance(data.get("info", {}), dict):
            return None
        return data


_NUMBER = (int, float)
_RECORD_TYPES: dict[str, tuple[type, ...]] = {
    "status": (str,), "metrics": (dict,), "error": (str,), "fingerprint": (str,), "inputs": (dict,),
    "seconds": _NUMBER, "started": _NUMBER, "ended": _NUMBER, "device": (str,), "reused": (str,),
}


def manifest_problem(manifest: Any) -> str | None:
    """What makes `manifest` not a run manifest (hand-edited, or not pdiff's), or None."""
    if not isinstance(manifest, dict):
        return "not a JSON object"
    for key, kind in (("config", dict), ("stages", dict), ("versions", dict), ("device", str)):
        if key in manifest and not isinstance(manifest[key], kind):
            return f"{key!r} is not a {'JSON object' if kind is dict else 'string'}"
    for stage, record in manifest.get("stages", {}).items():
        if not isinstance(record, dict):
            return f"the entry of stage {str(stage)[:40]!r} is not a JSON object"
        for key, kinds in _RECORD_TYPES.items():
            value = record.get(key)
            if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
                return f"stage {str(stage)[:40]!r} has a {key!r} of the wrong type"
    return None


def list_runs(root: Path | None = None) -> list[RunDir]:
    """Run directories directly under the runs root, newest first."""
    root = root or runs_root()
    if not root.is_dir():
        return []
    runs = [RunDir(p) for p in root.iterdir() if openable(p) and os.path.lexists(p / MANIFEST)]
    return sorted(runs, key=_modified, reverse=True)


def _modified(run: RunDir) -> float:
    try:
        return os.lstat(run.file(MANIFEST)).st_mtime
    except OSError:  # removed since it was listed
        return 0.0


def skipped_runs(root: Path | None = None) -> list[tuple[str, str]]:
    """(printable name, why) of run-like folders under the root that are not opened."""
    root = root or runs_root()
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.iterdir()):
        if not os.path.lexists(p / MANIFEST) or openable(p):
            continue
        problem = safety.name_problem(p.name)
        out.append((repr(safety.printable(p.name)), problem or "a symbolic link to a folder elsewhere"))
    return out


def openable(path: Path) -> bool:
    """A real folder (not a link to one elsewhere) whose name has no control characters."""
    return path.is_dir() and not path.is_symlink() and safety.name_problem(path.name) is None


def safe_run_path(name: str, root: Path | None = None) -> Path:
    """Resolve a run name under the runs root, refusing anything that escapes it: `..`, a
    symbolic link to a folder elsewhere, or a name with control characters."""
    root = (root or runs_root()).resolve()
    problem = safety.name_problem(name)
    if problem:
        raise RunError(f"run {safety.printable(name)!r} is refused: {problem}")
    if (root / name).is_symlink():
        raise RunError(f"run {name!r} is a symbolic link; the app opens only folders directly under the runs root "
                       f"{root} (move or copy the run there)")
    path = (root / name).resolve()
    if path.parent != root:
        raise RunError(f"run {name!r} is not a folder directly under the runs root {root}")
    return path

