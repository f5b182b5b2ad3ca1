"""Checkpoints trained elsewhere: state-dict files, read without running their code, checked
against the registered classifier.

Why: a zoo arrives as files, often from someone else, and opening one must never run code. So
`.safetensors` files are read with safetensors (tensors only, by construction) and `.pt` / `.pth`
files with `torch.load(weights_only=True)`, whose unpickler builds tensors, containers and plain
values only and refuses any other object before creating it: a payload's code never runs. Full
unpickling is never used. Each problem is one line naming the file: a pickled object, a damaged
file, a tensor the classifier lacks or has in another shape, a NaN.

A file holds a state dict (`torch.save(model.state_dict(), path)`, `safetensors.torch.save_file`),
or a dict with the state dict under "state_dict" or "model_state_dict" (a training checkpoint).
"""
from __future__ import annotations

import hashlib
import io
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors

from ..core.errors import RunError

SUFFIXES = (".safetensors", ".pt", ".pth")
NESTED_KEYS = ("state_dict", "model_state_dict")
SAVE_HINT = "save state dicts: torch.save(model.state_dict(), path) or safetensors.torch.save_file"

State = dict[str, torch.Tensor]


def natural_key(text: str) -> list[int | str]:
    """Sort key that puts ckpt_2 before ckpt_10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def find_checkpoints(folder: Path) -> list[Path]:
    """Every checkpoint file under `folder` (sub-folders too, hidden ones skipped), in natural
    order of their paths relative to it; a one-line RunError when there is none."""
    if not folder.is_dir():
        raise RunError(f"zoo.dir {str(folder)!r} is not a folder; give the folder that holds your checkpoints "
                       f"(--zoo DIR)")
    found = [p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    if not found:
        raise RunError(f"no checkpoints in {folder} ({', '.join(SUFFIXES)} files, sub-folders included); "
                       f"{SAVE_HINT}")
    return sorted(found, key=lambda p: natural_key(p.relative_to(folder).as_posix()))


def files_digest(paths: list[Path], root: Path) -> str:
    """Digest of the files' names (relative to `root`) and bytes: what the import read."""
    digest = hashlib.blake2b(digest_size=16)
    for path in paths:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(2**22), b""):
                digest.update(block)
        digest.update(b"\1")
    return digest.hexdigest()


def load_state(path: Path, name: str) -> State:
    """The state dict in one file (`name` is how messages call it). Never unpickles an object:
    a `.pt` file holding anything but tensors, containers and plain values is refused."""
    data = path.read_bytes()
    if path.suffix.lower() == ".safetensors":
        try:
            return dict(load_safetensors(data))
        except Exception as exc:  # noqa: BLE001 (safetensors raises its own error kinds; one line either way)
            raise RunError(f"zoo file {name} is not a readable safetensors file ({_first_line(exc)})") from None
    try:
        loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise RunError(f"zoo file {name} holds a pickled object other than tensors, refused unopened: pdiff loads "
                       f".pt files with torch.load(weights_only=True) and never runs code from a file "
                       f"({_first_line(exc)[:120]}); {SAVE_HINT}") from None
    except Exception as exc:  # noqa: BLE001 (a damaged or foreign file: one line, not a traceback)
        raise RunError(f"zoo file {name} cannot be read by torch.load ({exc.__class__.__name__}: "
                       f"{_first_line(exc)[:160]}); {SAVE_HINT}") from None
    return _state_dict(loaded, name)


def _state_dict(loaded: object, name: str) -> State:
    if isinstance(loaded, Mapping):
        for key in NESTED_KEYS:
            if isinstance(loaded.get(key), Mapping):
                loaded = loaded[key]
                break
    if not isinstance(loaded, Mapping) or not loaded:
        raise RunError(f"zoo file {name} holds a {type(loaded).__name__}, not a state dict; {SAVE_HINT}")
    for key, value in loaded.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise RunError(f"zoo file {name} holds {type(value).__name__} under {str(key)[:60]!r}, not a tensor; "
                           f"{SAVE_HINT}")
    return dict(loaded)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def misfit(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> str:
    """How `state` fails to be a state dict with `expected`'s names and shapes ("" when it fits)."""
    for key, want in expected.items():
        if key not in state:
            return f"it lacks {key}"
        got = state[key]
        if tuple(got.shape) != tuple(want.shape):
            return f"{key} has shape {tuple(got.shape)}, the classifier's is {tuple(want.shape)}"
        if want.is_floating_point() and not got.is_floating_point():
            return f"{key} holds {got.dtype} values, the classifier's are floating point"
    extra = [key for key in state if key not in expected]
    if extra:
        return f"it has {extra[0]}, which the classifier has not" + (f" (and {len(extra) - 1} more)"
                                                                      if len(extra) > 1 else "")
    bad = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    return f"{bad} holds NaN or infinite values" if bad else ""


def check_fits(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], name: str, arch: str,
               input_shape: tuple[int, ...], num_classes: int) -> None:
    """A one-line RunError naming the file and its first difference from the classifier."""
    problem = misfit(state, expected)
    if problem:
        raise RunError(f"zoo file {name} does not fit classifier {arch!r} (input {tuple(input_shape)}, "
                       f"{num_classes} classes): {problem}; every checkpoint must be a state dict of the network "
                       f"classifier.arch builds")


def shared_rest_misfit(state: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor],
                       target: set[str]) -> str:
    """The first floating-point tensor outside `target` that differs from `reference` ("" if none):
    checkpoints of a partial target must share the rest of the network exactly."""
    for key, value in reference.items():
        if key not in target and value.is_floating_point() and not torch.equal(state[key].to(value.dtype), value):
            return key
    return ""
