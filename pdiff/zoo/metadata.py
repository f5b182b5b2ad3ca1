"""What is known about each imported checkpoint: its run, its step and any label, from an optional
`zoo.json` or `zoo.csv` beside the checkpoints; and which runs stand for fresh training.

Why: checkpoints of several runs are compared in groups (a run, a seed, a learning rate), the
explorer colours them by these labels, and the ruler's fresh-training end needs checkpoints of a
run the generator never saw: with run ids, whole runs can be held out for it; without them,
nothing can stand for fresh training and the verdict says so.

Formats (a checkpoint is named by its path relative to the zoo folder, e.g. "seed3/step_100.pt"):
- `zoo.json`: a list of records `[{"file": ..., "run": ..., "step": ..., ...}]`, the same list under
  "checkpoints", or an object `{file: {"run": ..., ...}}`;
- `zoo.csv`: a header with a `file` column, one row per checkpoint (numbers read as numbers).
Known columns: `run` (else `seed` names the run), `step`; every other column is a label. Without
metadata a checkpoint's run is its sub-folder (`runs/seed0/a.pt`: run "seed0"), else unknown.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import RunError

FILES = ("zoo.json", "zoo.csv")
FRESH_SHARE = 0.2  # zoo.fresh=auto holds out this share of the runs (whole runs, at least one)
MAX_METADATA_BYTES = 256 * 2**20

Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class Checkpoint:
    """One imported checkpoint: its file (relative to the zoo folder), run, step and labels."""

    file: str
    run: str | None  # None: unknown
    step: int  # from the metadata, else the checkpoint's place in its run (file order)
    labels: dict[str, Scalar] = field(default_factory=dict)  # every metadata column but "file"

    def record(self) -> dict[str, Any]:
        return {"file": self.file, "run": self.run, "step": self.step, **self.labels}


def metadata_file(folder: Path) -> Path | None:
    """The metadata file of a zoo folder (None when there is none; two are refused)."""
    present = [folder / name for name in FILES if (folder / name).is_file()]
    if len(present) > 1:
        raise RunError(f"{folder} holds both zoo.json and zoo.csv; keep one")
    return present[0] if present else None


def read_metadata(folder: Path, files: list[str]) -> dict[str, dict[str, Scalar]]:
    """file -> its metadata record (without "file"); {} without a metadata file. Every checkpoint
    needs a row and every row a checkpoint: a one-line RunError names the first that has none."""
    path = metadata_file(folder)
    if path is None:
        return {}
    if path.stat().st_size > MAX_METADATA_BYTES:
        raise RunError(f"{path} is larger than {MAX_METADATA_BYTES >> 20} MiB; it is not zoo metadata")
    rows = _json_rows(path) if path.suffix == ".json" else _csv_rows(path)
    records: dict[str, dict[str, Scalar]] = {}
    for row in rows:
        name = str(row.get("file") or "").strip().removeprefix("./")
        if not name:
            raise RunError(f"{path.name}: a row without a 'file' (the checkpoint's path relative to {folder})")
        if name in records:
            raise RunError(f"{path.name} lists {name} twice")
        records[name] = {k: _scalar(path.name, name, k, v) for k, v in row.items() if k != "file"}
    unknown = [name for name in records if name not in set(files)]
    if unknown:
        raise RunError(f"{path.name} names {unknown[0]}, which is not a checkpoint in {folder} "
                       f"(checkpoints: {', '.join(files[:3])}{', ...' if len(files) > 3 else ''})")
    missing = [name for name in files if name not in records]
    if missing:
        raise RunError(f"{path.name} has no row for {missing[0]}; give every checkpoint a row "
                       f"(or move the file out of the folder)")
    return records


def _json_rows(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise RunError(f"{path} is not valid JSON ({exc.__class__.__name__}: {str(exc)[:80]})") from None
    if isinstance(data, dict) and isinstance(data.get("checkpoints"), list):
        data = data["checkpoints"]
    if isinstance(data, dict) and all(isinstance(record, dict) for record in data.values()):
        data = [{**record, "file": name} for name, record in data.items()]
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise RunError(f"{path.name} must hold a list of records, {{'checkpoints': [...]}} or {{file: record}}")
    return data


def _csv_rows(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise RunError(f"{path} is not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "file" not in reader.fieldnames:
        raise RunError(f"{path.name} needs a header row with a 'file' column")
    return [{k: _number(v) for k, v in row.items() if k is not None and v is not None} for row in reader]


def _number(text: str) -> Scalar:
    text = text.strip()
    if text == "":
        return None
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        return value if not isinstance(value, float) or math.isfinite(value) else text
    return text


def _scalar(source: str, name: str, key: str, value: Any) -> Scalar:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise RunError(f"{source}: {name}'s {key!r} is {type(value).__name__} {str(value)[:40]}; metadata values "
                   f"are strings, numbers or booleans")


def describe(folder: Path, paths: list[Path]) -> list[Checkpoint]:
    """Every checkpoint with its run, step and labels (see the module docstring)."""
    files = [p.relative_to(folder).as_posix() for p in paths]
    records = read_metadata(folder, files)
    out: list[Checkpoint] = []
    seen: dict[str | None, int] = {}
    for name in files:
        record = records.get(name, {})
        run = _run_of(name, record, bool(records))
        step = record.get("step")
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not float(step).is_integer():
            step = seen.get(run, 0)
        seen[run] = seen.get(run, 0) + 1
        out.append(Checkpoint(name, run, int(step), dict(record)))
    return out


def _run_of(name: str, record: dict[str, Scalar], has_metadata: bool) -> str | None:
    for key in ("run", "seed"):
        if record.get(key) is not None:
            return str(record[key])
    if not has_metadata and "/" in name:
        return name.rsplit("/", 1)[0]
    return None


def runs_in_order(checkpoints: list[Checkpoint]) -> list[str | None]:
    """The distinct runs, in order of first appearance."""
    return list(dict.fromkeys(c.run for c in checkpoints))


def split_fresh(checkpoints: list[Checkpoint], spec: str) -> tuple[list[int], list[int], str]:
    """(training indices, fresh-reference indices, why there is no fresh reference or "").

    `spec` is zoo.fresh: "auto" holds out the last fifth of the runs (at least one, whole runs)
    when every checkpoint's run is known and there are two or more; "none"; or run ids.
    """
    everything = list(range(len(checkpoints)))
    runs = runs_in_order(checkpoints)
    if spec.strip() == "none":
        return everything, [], "zoo.fresh=none: no checkpoints were held out as fresh training"
    if spec.strip() == "auto":
        if None in runs:
            return everything, [], ("the zoo's metadata does not say which run each checkpoint belongs to, so no "
                                    "run can be held out as fresh training: give every checkpoint a 'run' (or "
                                    "'seed') in zoo.json or zoo.csv, or put each run in its own sub-folder")
        if len(runs) < 2:
            return everything, [], ("the zoo holds one run only, so no independent run can be held out as fresh "
                                    "training: import checkpoints of two or more runs (seeds)")
        held = set(runs[-max(1, round(FRESH_SHARE * len(runs))):])
    else:
        held = {r.strip() for r in spec.split(",") if r.strip()}
        known = [r for r in runs if r is not None]
        unknown = sorted(held - set(known))
        if unknown:
            raise RunError(f"zoo.fresh names run {unknown[0]!r}, which the zoo does not have; runs: "
                           f"{', '.join(known[:8])}{', ...' if len(known) > 8 else ''}")
        if held >= set(runs):
            raise RunError("zoo.fresh holds out every run, leaving none to learn from; name fewer runs")
    train = [i for i, c in enumerate(checkpoints) if c.run not in held]
    fresh = [i for i, c in enumerate(checkpoints) if c.run in held]
    return train, fresh, ""


def run_index(checkpoints: list[Checkpoint], runs: list[str | None]) -> list[int]:
    """Each checkpoint's run as an index into `runs` (-1: unknown)."""
    position = {run: i for i, run in enumerate(runs) if run is not None}
    return [position.get(c.run, -1) for c in checkpoints]
