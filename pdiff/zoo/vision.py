"""Real image datasets read from torchvision's on-disk layout, with plain numpy + torch.

torchvision is not a dependency (its wheels are tied to one torch build), so this module parses
the original file formats itself: MNIST/Fashion-MNIST idx files, the CIFAR binary and python
versions, and the STL-10 binary. The folder layout is torchvision's, so a `--root` that already
holds a torchvision download is used as is. Nothing is fetched unless `data.download=true`.

The datasets `mnist`, `fashion-mnist`, `cifar10`, `cifar100` and `stl10` are named in
`core.registry` and their presets in `core.presets`. Loading is lazy: a loader reads only its own
files when `load_dataset` asks for it.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
import pickle
import shutil
import struct
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import numpy as np
import torch

try:  # numpy >= 2 moved the core modules; old pickles still name numpy.core
    from numpy._core import multiarray, numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray, numeric  # type: ignore[no-redef]

from ..core.config import DataConfig
from ..core.errors import ConfigError
from .datasets import Dataset

# Per-channel mean and std of each training split (the usual published constants).
STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "stl10": ((0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713)),
}
# Random-crop padding for the standard augmentation (0 = no augmentation).
CROP_PADDING = {"cifar10": 4, "cifar100": 4, "stl10": 12}


@dataclass(frozen=True)
class Remote:
    """One file to fetch for `--download`: where from, its checksum, and where it lands."""

    url: str
    md5: str
    dest: str  # path relative to the data root


_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
REMOTES: dict[str, list[Remote]] = {
    "mnist": [Remote(_MNIST_URL + f + ".gz", md5, f"MNIST/raw/{f}.gz") for f, md5 in zip(_IDX_FILES, (
        "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
        "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"))],
    "fashion-mnist": [Remote(_FASHION_URL + f + ".gz", md5, f"FashionMNIST/raw/{f}.gz") for f, md5 in zip(_IDX_FILES, (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
        "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"))],
    # The binary versions: plain records, so a download never needs the pickle reader.
    "cifar10": [Remote("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                       "c32a1d4ab5d03f1284b67883e8d87530", "cifar-10-binary.tar.gz")],
    "cifar100": [Remote("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
                        "03b5dce01913d631647c71ecec9e9cb8", "cifar-100-binary.tar.gz")],
    "stl10": [Remote("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
                     "91f7769df0f17e558f3565bffb0c7dfb", "stl10_binary.tar.gz")],
}

# Where each dataset can live under the root: (folder, files) alternatives, first complete wins.
LAYOUTS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "mnist": [("MNIST/raw", _IDX_FILES)],
    "fashion-mnist": [("FashionMNIST/raw", _IDX_FILES)],
    "cifar10": [("cifar-10-batches-bin", tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)),
                ("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",))],
    "cifar100": [("cifar-100-binary", ("train.bin", "test.bin")),
                 ("cifar-100-python", ("train", "test"))],
    "stl10": [("stl10_binary", ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin"))],
}


# --------------------------------------------------------------------------- locating files

def _existing(folder: Path, name: str) -> Path | None:
    """The file itself, or its `.gz` twin (MNIST is distributed gzipped), or None."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def locate(name: str, config: DataConfig) -> tuple[Path, dict[str, Path]]:
    """Find the dataset's folder under the root, downloading it first if allowed and missing."""
    root = Path(config.root).expanduser()
    found = _find_complete(root, LAYOUTS[name])
    if found is None and config.download:
        download(name, root)
        found = _find_complete(root, LAYOUTS[name])
    if found is None:
        raise _missing_error(name, root)
    return found


def _find_complete(root: Path, layouts: list[tuple[str, tuple[str, ...]]]) -> tuple[Path, dict[str, Path]] | None:
    for folder, files in layouts:
        paths = {f: _existing(root / folder, f) for f in files}
        if all(p is not None for p in paths.values()):
            return root / folder, paths  # type: ignore[return-value]
    return None


def _missing_error(name: str, root: Path) -> ConfigError:
    """One line: where we looked, what was missing, and how to fetch it."""
    details = []
    for folder, files in LAYOUTS[name]:
        missing = [f for f in files if _existing(root / folder, f) is None]
        details.append(f"{root / folder}/ (missing {', '.join(missing[:2])}{', ...' if len(missing) > 2 else ''})")
    return ConfigError(f"dataset {name!r} not found under {root}: looked in {' and '.join(details)}; "
                       f"pass --download (or set data.download=true) to fetch it")


# --------------------------------------------------------------------------- file formats

def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse an idx file (MNIST format, optionally gzipped): big-endian header, uint8 payload.

    Header: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then
    one big-endian uint32 per dimension. The magic number is therefore 0x0800 + ndim.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0] if len(data) >= 4 else -1
    if magic != 0x0800 + ndim:
        raise ConfigError(f"{path} is not an idx file of {ndim} dimension(s) (magic {magic:#x}, "
                          f"expected {0x0800 + ndim:#x}); delete it and re-download")
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    payload = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if payload.size != int(np.prod(dims)):
        raise ConfigError(f"{path} is truncated: header says {dims}, found {payload.size} values")
    return payload.reshape(dims)


def read_cifar_binary(paths: list[Path], label_bytes: int, label_index: int) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR binary records: `label_bytes` label bytes then 3072 pixels (R plane, G, B; row-major)."""
    record = label_bytes + 3 * 32 * 32
    chunks = []
    for path in paths:
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size % record:
            raise ConfigError(f"{path} is truncated: {raw.size} bytes is not a multiple of {record}")
        chunks.append(raw.reshape(-1, record))
    rows = np.concatenate(chunks)
    return rows[:, label_bytes:].reshape(-1, 3, 32, 32), rows[:, label_index].astype(np.int64)


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays, lists, dicts and strings, and nothing else.

    The CIFAR python files are pickles. A plain `pickle.load` on a file from the internet runs
    whatever callable the file names (e.g. `os.system`); here every global the file references
    is looked up in a fixed allow-list, so a malicious file fails instead of executing code.
    """

    def find_class(self, module: str, name: str) -> Any:
        allowed = _safe_globals()
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: dataset pickles may only "
                                         f"contain numpy arrays, lists, dicts and strings")
        return allowed[(module, name)]


@functools.lru_cache(maxsize=1)
def _safe_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                           ("_codecs", "encode"): _latin1_encode}
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct  # arrays, protocol <= 4
        allowed[(f"{core}.multiarray", "scalar")] = multiarray.scalar  # numpy scalars
        allowed[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer  # contiguous arrays, protocol 5
    return allowed


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """What protocol-2 pickles use to rebuild `bytes`; any other codec is refused."""
    if encoding.lower().replace("-", "") != "latin1":
        raise pickle.UnpicklingError(f"refusing codec {encoding!r} in a dataset pickle")
    return text.encode("latin1")


def restricted_load(file: BinaryIO) -> Any:
    """`pickle.load` restricted to numpy data; `latin1` decodes the Python 2 strings of CIFAR."""
    return NumpyOnlyUnpickler(file, encoding="latin1").load()


def read_cifar_pickle(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR python batch: a dict with `data` (N, 3072) uint8 and a label list."""
    try:
        with open(path, "rb") as f:
            entry = restricted_load(f)
    except pickle.UnpicklingError as error:
        raise ConfigError(f"{path}: {error}") from error
    if not isinstance(entry, dict):
        raise ConfigError(f"{path} is not a CIFAR batch (expected a dict, got {type(entry).__name__})")
    entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
    if "data" not in entry or label_key not in entry:
        raise ConfigError(f"{path} lacks the keys 'data' and {label_key!r} (has {sorted(entry)})")
    images = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return images, np.asarray(entry[label_key], dtype=np.int64)


def read_stl10(x_path: Path, y_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """STL-10 binary: images stored column-major per channel (hence the H/W transpose), labels 1..10."""
    images = np.fromfile(x_path, dtype=np.uint8)
    if images.size % (3 * 96 * 96):
        raise ConfigError(f"{x_path} is truncated: {images.size} bytes is not a multiple of {3 * 96 * 96}")
    images = images.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)
    labels = np.fromfile(y_path, dtype=np.uint8).astype(np.int64) - 1
    return images, labels


# --------------------------------------------------------------------------- tensors and augmentation

def to_tensor(images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 in [0, 1] -> per-channel z-score (torchvision's ToTensor+Normalize)."""
    images = np.require(images, np.uint8, ["C_CONTIGUOUS", "WRITEABLE"])  # copies only if needed
    x = torch.from_numpy(images).float().div_(255.0)
    x.sub_(torch.tensor(mean).view(1, -1, 1, 1)).div_(torch.tensor(std).view(1, -1, 1, 1))
    return x


def random_crop_flip(batch: torch.Tensor, generator: torch.Generator, padding: int,
                     fill: tuple[float, ...]) -> torch.Tensor:
    """Batched RandomCrop(size, padding) + RandomHorizontalFlip on a (B, C, H, W) batch.

    Padding uses `fill`, the normalized value of a black pixel, so the result equals padding the
    raw image with zeros as torchvision does before normalizing. Random numbers come only from
    `generator` (drawn on its device), so the same seed gives the same batch.
    """
    b, c, h, w = batch.shape
    dev = generator.device
    oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=dev).to(batch.device)
    ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=dev).to(batch.device)
    flip = (torch.rand(b, generator=generator, device=dev) < 0.5).to(batch.device)
    padded = torch.tensor(fill, dtype=batch.dtype, device=batch.device).view(1, c, 1, 1)
    padded = padded.expand(b, c, h + 2 * padding, w + 2 * padding).clone()
    padded[:, :, padding:padding + h, padding:padding + w] = batch
    rows = oy[:, None] + torch.arange(h, device=batch.device)  # (B, H)
    cols = ox[:, None] + torch.arange(w, device=batch.device)  # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # a flipped crop reads its columns backwards
    bi = torch.arange(b, device=batch.device)[:, None, None, None]
    ci = torch.arange(c, device=batch.device)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]  # (B, C, H, W)


def _dataset(name: str, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
             num_classes: int) -> Dataset:
    mean, std = STATS[name]
    augment = None
    if CROP_PADDING.get(name):
        black = tuple(-m / s for m, s in zip(mean, std))
        augment = functools.partial(random_crop_flip, padding=CROP_PADDING[name], fill=black)
    return Dataset(to_tensor(train[0], mean, std), torch.from_numpy(train[1]).long(),
                   to_tensor(test[0], mean, std), torch.from_numpy(test[1]).long(), num_classes, augment)


# --------------------------------------------------------------------------- loaders

def _load_idx(name: str, config: DataConfig) -> Dataset:
    _, files = locate(name, config)
    split = {}
    for prefix in ("train", "t10k"):
        images = read_idx(files[f"{prefix}-images-idx3-ubyte"], 3)[:, None]  # (N, 1, 28, 28)
        labels = read_idx(files[f"{prefix}-labels-idx1-ubyte"], 1).astype(np.int64)
        if len(images) != len(labels):
            raise ConfigError(f"{name}: {len(images)} {prefix} images but {len(labels)} labels")
        split[prefix] = (images, labels)
    return _dataset(name, split["train"], split["t10k"], 10)


def load_mnist(config: DataConfig) -> Dataset:
    """MNIST from `<root>/MNIST/raw/` (idx files, plain or .gz)."""
    return _load_idx("mnist", config)


def load_fashion_mnist(config: DataConfig) -> Dataset:
    """Fashion-MNIST from `<root>/FashionMNIST/raw/` (idx files, plain or .gz)."""
    return _load_idx("fashion-mnist", config)


def load_cifar10(config: DataConfig) -> Dataset:
    """CIFAR-10 from `<root>/cifar-10-batches-bin/` or `<root>/cifar-10-batches-py/`."""
    folder, files = locate("cifar10", config)
    names = list(files)
    if folder.name.endswith("-bin"):
        train = read_cifar_binary([files[n] for n in names[:5]], 1, 0)
        test = read_cifar_binary([files[names[5]]], 1, 0)
    else:
        parts = [read_cifar_pickle(files[n], "labels") for n in names[:5]]
        train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
        test = read_cifar_pickle(files[names[5]], "labels")
    return _dataset("cifar10", train, test, 10)


def load_cifar100(config: DataConfig) -> Dataset:
    """CIFAR-100 (fine labels, 100 classes) from `<root>/cifar-100-binary/` or `<root>/cifar-100-python/`."""
    folder, files = locate("cifar100", config)
    if folder.name.endswith("-binary"):
        # Records start with (coarse, fine) label bytes; index 1 is the fine label.
        train = read_cifar_binary([files["train.bin"]], 2, 1)
        test = read_cifar_binary([files["test.bin"]], 2, 1)
    else:
        train = read_cifar_pickle(files["train"], "fine_labels")
        test = read_cifar_pickle(files["test"], "fine_labels")
    return _dataset("cifar100", train, test, 100)


def load_stl10(config: DataConfig) -> Dataset:
    """STL-10 labelled splits (5000 train, 8000 test, 96x96) from `<root>/stl10_binary/`."""
    _, files = locate("stl10", config)
    train = read_stl10(files["train_X.bin"], files["train_y.bin"])
    test = read_stl10(files["test_X.bin"], files["test_y.bin"])
    return _dataset("stl10", train, test, 10)


# --------------------------------------------------------------------------- download (opt-in)

def download(name: str, root: Path) -> None:
    """Fetch a dataset's official files into `root` (only called when `data.download=true`)."""
    root.mkdir(parents=True, exist_ok=True)
    for remote in REMOTES[name]:
        dest = root / remote.dest
        print(f"downloading {remote.url} -> {dest}", file=sys.stderr)
        fetch(remote.url, dest, remote.md5)
        if dest.name.endswith(".tar.gz"):
            extract_tar(dest, root)
            dest.unlink()


def fetch(url: str, dest: Path, md5: str | None) -> None:
    """Stream `url` to a temporary file beside `dest`, check its md5, then rename into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    while chunk := response.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
            except OSError as error:  # URLError, timeouts, resets
                raise ConfigError(f"could not download {url} ({error}); check the network, or put the "
                                  f"files under {dest.parent} by hand") from error
        if md5 and digest.hexdigest() != md5:
            raise ConfigError(f"download of {url} is corrupt (md5 {digest.hexdigest()}, expected {md5}); try again")
        os.replace(tmp_name, dest)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def extract_tar(archive: Path, root: Path) -> None:
    """Extract a tarball into `root`, refusing links, devices, absolute paths and `..`.

    Members are unpacked into a staging folder under `root`, then each file is moved into place
    with an atomic rename, so an interrupted extraction never leaves a half-written file.
    """
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".extract-"))
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                path = PurePosixPath(member.name)
                if path.is_absolute() or ".." in path.parts or not (member.isfile() or member.isdir()):
                    raise ConfigError(f"{archive}: refusing unsafe archive member {member.name!r}")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(staging, members=members, filter="data")
            else:  # pragma: no cover - Python without extraction filters; members were checked above
                tar.extractall(staging, members=members)
        for file in sorted(p for p in staging.rglob("*") if p.is_file()):
            target = root / file.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(file, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
