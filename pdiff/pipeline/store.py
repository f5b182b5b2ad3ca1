"""A content-addressed store of finished stages, shared by the runs in one folder.

When a stage finishes, its artifacts are hard-linked (copied where links are impossible) into
`<store>/<stage>-<fingerprint>/` beside a `record.json` of its metrics, time and file digests.
When another run (or the same run after a config change and back) needs a stage with the same
fingerprint, the artifacts are linked from there instead of recomputed. The fingerprint names
everything the stage consumed (see fingerprint.py), so reuse never depends on copied manifest
entries. Runs never write into a stored file: every write replaces a file by renaming a new one
over it, which leaves the stored link intact.

Where: `$PDIFF_STORE`, else `.pdiff-store/` in the folder that holds the run (for the app and the
CLI: `runs/.pdiff-store`); `PDIFF_STORE=off` turns it off. Clear it with
`python -m pdiff store --clear` (or delete the folder); `--prune` keeps only entries that some run
still links to.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import RunError
from ..core.rundir import read_json, write_json

STORE_ENV = "PDIFF_STORE"
STORE_DIR = ".pdiff-store"
RECORD = "record.json"


def store_for(run_path: Path) -> Store | None:
    """The store a run at `run_path` shares, or None when the store is turned off."""
    setting = os.environ.get(STORE_ENV, "").strip()
    if setting.lower() in ("off", "0", "none", "false", "no"):
        return None
    return Store(Path(setting) if setting else Path(run_path).resolve().parent / STORE_DIR)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def link_or_copy(source: Path, target: Path) -> None:
    """Put `source` at `target` atomically: a hard link where possible, else a copy."""
    tmp = target.with_name(f".{target.name}.link.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:  # another filesystem, or one without hard links
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


@dataclass(frozen=True)
class Store:
    root: Path

    def entry(self, stage: str, fingerprint: str) -> Path:
        return self.root / f"{stage}-{fingerprint}"

    def lookup(self, stage: str, fingerprint: str) -> dict[str, Any] | None:
        """The stored record of a stage with this fingerprint, if its files are all intact."""
        entry = self.entry(stage, fingerprint)
        if not (entry / RECORD).is_file():
            return None
        try:
            record = read_json(entry / RECORD)
        except RunError:
            return None
        files = record.get("files") if isinstance(record, dict) else None
        if not isinstance(files, dict):
            return None
        for name, info in files.items():
            path = entry / name
            if not path.is_file() or path.is_symlink() or path.stat().st_size != info.get("size"):
                return None
        return record

    def publish(self, stage: str, fingerprint: str, run_path: Path, files: list[str], record: dict[str, Any]) -> None:
        """Keep a finished stage's artifacts (linked, not copied, where possible) and its record."""
        entry = self.entry(stage, fingerprint)
        if (entry / RECORD).is_file():
            return
        if any((run_path / name).is_symlink() or not (run_path / name).is_file() for name in files):
            return  # only a stage's own regular files are kept (a link would be followed into the store)
        entry.mkdir(parents=True, exist_ok=True)
        info = {}
        for name in files:
            source = run_path / name
            link_or_copy(source, entry / name)
            info[name] = {"size": source.stat().st_size, "sha256": file_digest(entry / name)}
        write_json(entry / RECORD, record | {"files": info})

    def adopt(self, stage: str, fingerprint: str, run_path: Path) -> dict[str, Any] | None:
        """Link a stored stage's artifacts into a run; None when the store lacks it or it is damaged."""
        record = self.lookup(stage, fingerprint)
        if record is None:
            return None
        entry = self.entry(stage, fingerprint)
        for name, info in record["files"].items():
            if file_digest(entry / name) != info.get("sha256"):
                shutil.rmtree(entry, ignore_errors=True)  # damaged: forget it, the stage is recomputed
                return None
        for name in record["files"]:
            link_or_copy(entry / name, run_path / name)
        return record

    def entries(self) -> list[Path]:
        return sorted(p for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []

    def prune(self) -> int:
        """Remove entries no run links to any more (every file's link count is 1); returns how many."""
        removed = 0
        for entry in self.entries():
            files = [p for p in entry.iterdir() if p.name != RECORD]
            if all(p.stat().st_nlink <= 1 for p in files):
                shutil.rmtree(entry)
                removed += 1
        return removed

    def clear(self) -> int:
        count = len(self.entries())
        shutil.rmtree(self.root, ignore_errors=True)
        return count

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for e in self.entries() for p in e.iterdir())
