"""Opening a run received from someone else: its files are data, never a way out of its folder.

A run folder may arrive with a `run.log` that is a symbolic link to a shell start-up file, a
`run.json` that is a FIFO, or a folder name with a newline in it. Every read and write of a run's
files goes through here (runs.py, the app's launcher) and obeys four rules:

- a file inside a run is opened only if it is a regular file that is not a symbolic link
  (`O_NOFOLLOW`, then `fstat`): a link is refused with a one-line `RunError`, never followed;
- a file appended to (the log) must also have a single hard link, so it cannot be someone
  else's file; replaced files (everything else) are written to a new file and renamed over
  the old name, which replaces a link instead of writing through it;
- run names with control characters (newline, escape, ...) are refused;
- new files get the permissions the umask allows (`mkstemp` alone would make them 0600).

It also holds the JSON writer: strict JSON, where a non-finite float (an undefined metric)
becomes `null`.
"""
from __future__ import annotations

import errno
import json
import math
import os
import stat
import threading
import unicodedata
from pathlib import Path
from typing import Any

from .errors import RunError

MAX_JSON_BYTES = 64 * 2**20  # a manifest is kilobytes; a bigger "run.json" is not one


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a run (a control character, say), or None when it can."""
    for char in name:
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp"):  # Cs: undecodable bytes
            return f"it contains the control character {char!r}"
    return None


def check_run_path(path: str | os.PathLike) -> None:
    """Refuse a run path with control characters anywhere (they end up in commands and logs)."""
    problem = name_problem(str(path))
    if problem:
        raise RunError(f"the run path {printable(str(path))} is refused: {problem}; "
                       f"choose a name of printable characters")


def _refusal(path: Path, what: str) -> Exception:
    return RunError(f"{printable(path.name)} in {printable(str(path.parent))} is {what}; pdiff opens only "
                    f"regular files inside a run (a received run cannot point outside its folder): delete it")


def _describe(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def check_regular(path: Path) -> None:
    """Raise a one-line RunError unless `path` is a regular file and not a symbolic link
    (FileNotFoundError passes through: callers say what a missing file means)."""
    mode = os.lstat(path).st_mode
    if not stat.S_ISREG(mode):
        raise _refusal(path, _describe(mode))


def open_regular(path: Path, flags: int = os.O_RDONLY, mode: int = 0o666, single_link: bool = False) -> int:
    """A file descriptor of `path`, opened without following a final symbolic link and checked to
    be a regular file (with `single_link`: one that no other name shares)."""
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags | nofollow | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):  # O_NOFOLLOW met a symbolic link
            raise _refusal(path, "a symbolic link") from None
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            raise exc from None
        if not stat.S_ISREG(mode):  # e.g. a FIFO with no reader to write to
            raise _refusal(path, _describe(mode)) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _refusal(path, _describe(info.st_mode))
        if single_link and info.st_nlink > 1:
            raise _refusal(path, f"a hard link shared with {info.st_nlink - 1} other name(s)")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes(path: Path, limit: int = MAX_JSON_BYTES) -> bytes:
    """The content of a regular file inside a run (no links followed), at most `limit` bytes."""
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
            raise RunError(f"{printable(str(path))} is larger than {limit >> 20} MiB; it is not a pdiff file: "
                       f"delete or replace it")
    return data


def read_tail(path: Path, size: int = 64 * 1024) -> bytes:
    """The last `size` bytes of a regular file inside a run (a log can be large)."""
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, end - size))
        return handle.read(size)


def open_append(path: Path):
    """A binary file object appending to `path` (created if missing): only a regular file with
    a single link, never one a symbolic or hard link makes shared with a file elsewhere."""
    fd = open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666, single_link=True)
    return os.fdopen(fd, "ab")


def printable(text: str) -> str:
    """`text` with control characters escaped (for one line of a log)."""
    return "".join(c if c == " " or unicodedata.category(c)[0] not in "CZ"
                   else c.encode("unicode_escape").decode("ascii") for c in text)


# --------------------------------------------------------------------------- permissions

_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (threads share it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:  # no /proc: the classic set-and-restore
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode an ordinary new file gets: 0o666 less the umask."""
    return 0o666 & ~current_umask()


# --------------------------------------------------------------------------- strict JSON


def finite_json(value: Any) -> Any:
    """`value` with every NaN or infinite float replaced by None (JSON null: undefined)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """Strict JSON (no NaN or Infinity tokens, which other JSON readers reject)."""
    return json.dumps(finite_json(value), allow_nan=False, **kwargs)
