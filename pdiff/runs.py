"""The run directory: the contract between library, CLI, app and notebooks.

Everything is safetensors + JSON, so a run received from someone else can be opened safely.
Every write goes to a temporary file that is renamed into place, so a crash never leaves half
a file behind. `run.json` is the manifest: config, versions, seed, device and per-stage status.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

MANIFEST = "run.json"
PROGRESS = "progress.json"


class RunError(RuntimeError):
    """A run directory is missing, damaged, partial or from another config."""


def runs_root() -> Path:
    """Where runs live: `$PDIFF_RUNS`, else `runs/` in the working directory."""
    return Path(os.environ.get("PDIFF_RUNS", "runs"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=2, sort_keys=True).encode())


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{path} is missing; is this a pdiff run directory?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{path} is damaged ({exc.__class__.__name__}); delete the run or rerun it with --force") from None


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any] | None = None) -> None:
    """Write tensors (made contiguous, moved to CPU) plus JSON metadata, atomically."""
    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    metadata = {"pdiff": json.dumps(meta or {})}
    atomic_write_bytes(path, save(clean, metadata=metadata))


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a safetensors artifact; a missing or truncated file raises a one-line `RunError`."""
    if not path.exists():
        raise RunError(f"{path.name} is missing from {path.parent}; the run is partial: "
                       f"rerun it (python -m pdiff run --out {path.parent}) to finish it")
    try:
        tensors = load_file(path)
        with safe_open(path, framework="pt") as handle:
            raw = (handle.metadata() or {}).get("pdiff", "{}")
        return tensors, json.loads(raw)
    except (SafetensorError, OSError, ValueError) as exc:
        raise RunError(f"{path} is damaged ({str(exc).splitlines()[0][:80]}); "
                       f"redo its stage with python -m pdiff run --out {path.parent} --force STAGE") from None


def versions() -> dict[str, str]:
    import numpy
    import safetensors

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

    def exists(self) -> bool:
        return self.file(MANIFEST).exists()

    def manifest(self) -> dict[str, Any]:
        return read_json(self.file(MANIFEST))

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
        try:
            return json.loads(self.file(PROGRESS).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None


def list_runs(root: Path | None = None) -> list[RunDir]:
    """Run directories directly under the runs root, newest first."""
    root = root or runs_root()
    if not root.is_dir():
        return []
    runs = [RunDir(p) for p in root.iterdir() if p.is_dir() and (p / MANIFEST).exists()]
    return sorted(runs, key=lambda r: r.file(MANIFEST).stat().st_mtime, reverse=True)


def safe_run_path(name: str, root: Path | None = None) -> Path:
    """Resolve a run name under the runs root, refusing anything that escapes it."""
    root = (root or runs_root()).resolve()
    path = (root / name).resolve()
    if path.parent != root:
        raise RunError(f"run {name!r} is not a folder directly under the runs root {root}")
    return path

