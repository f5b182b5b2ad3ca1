"""Vision datasets: tiny files in each real on-disk format, loaded through the registry."""
from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from pdiff.core.config import DataConfig
from pdiff.core.errors import ConfigError
from pdiff.core.presets import preset
from pdiff.zoo import vision as vision_data
from pdiff.zoo.classifiers import build_classifier
from pdiff.zoo.datasets import carve_validation, load_dataset, read_dataset
from pdiff.zoo.params import layout_of, select_target

N_TRAIN, N_TEST = 20, 10


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _normalized(raw: np.ndarray, name: str) -> torch.Tensor:
    """The expected tensor, computed independently of the loader: (x / 255 - mean) / std per channel."""
    mean, std = vision_data.STATS[name]
    x = raw.astype(np.float64) / 255.0
    x = (x - np.array(mean).reshape(1, -1, 1, 1)) / np.array(std).reshape(1, -1, 1, 1)
    return torch.from_numpy(x.astype(np.float32))


# --------------------------------------------------------------------------- MNIST / Fashion-MNIST

def _write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def _write_mnist(root: Path, folder: str, gz: bool) -> dict[str, np.ndarray]:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = _rng()
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, N_TRAIN, dtype=np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, N_TEST, dtype=np.uint8)}
    for name, array in arrays.items():
        _write_idx(raw / name, array, gz)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_idx_datasets_load_exact_pixels(tmp_path: Path, name: str, folder: str, gz: bool) -> None:
    arrays = _write_mnist(tmp_path, folder, gz)
    ds = read_dataset(DataConfig(name=name, root=str(tmp_path)))
    assert ds.x_train.shape == (N_TRAIN, 1, 28, 28) and ds.x_train.dtype == torch.float32
    assert ds.x_test.shape == (N_TEST, 1, 28, 28)
    torch.testing.assert_close(ds.x_train, _normalized(arrays["train-images-idx3-ubyte"][:, None], name))
    torch.testing.assert_close(ds.x_test, _normalized(arrays["t10k-images-idx3-ubyte"][:, None], name))
    assert ds.y_train.dtype == torch.int64
    assert ds.y_train.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert ds.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert ds.num_classes == 10 and ds.augment is None


def test_idx_pixel_value_and_normalization_constants(tmp_path: Path) -> None:
    arrays = _write_mnist(tmp_path, "MNIST", gz=False)
    ds = read_dataset(DataConfig(name="mnist", root=str(tmp_path)))
    pixel = arrays["train-images-idx3-ubyte"][3, 5, 7]
    assert ds.x_train[3, 0, 5, 7].item() == pytest.approx((pixel / 255 - 0.1307) / 0.3081, abs=1e-6)


def test_idx_bad_magic_is_rejected(tmp_path: Path) -> None:
    _write_mnist(tmp_path, "MNIST", gz=False)
    labels = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    labels.write_bytes(struct.pack(">I", 0x0803) + labels.read_bytes()[4:])  # claims 3 dims
    with pytest.raises(ConfigError, match="not an idx file"):
        read_dataset(DataConfig(name="mnist", root=str(tmp_path)))


def test_subset_keeps_file_order(tmp_path: Path) -> None:
    """Validation is carved out of train first; subsets then keep the first samples of what is left."""
    _write_mnist(tmp_path, "MNIST", gz=True)
    config = DataConfig(name="mnist", root=str(tmp_path), train_subset=5, test_subset=3)
    whole = carve_validation(read_dataset(config), config.val_fraction)
    ds = load_dataset(config)
    assert ds.y_train.tolist() == whole.y_train[:5].tolist() and ds.y_test.tolist() == whole.y_test[:3].tolist()
    assert torch.equal(ds.y_val, whole.y_val)


# --------------------------------------------------------------------------- CIFAR

def _records(n: int, label_bytes: int, seed: int) -> np.ndarray:
    """n CIFAR binary records: label byte(s) then 3072 pixel bytes."""
    rng = _rng(seed)
    labels = rng.integers(0, 100 if label_bytes == 2 else 10, (n, label_bytes), dtype=np.uint8)
    return np.concatenate([labels, rng.integers(0, 256, (n, 3072), dtype=np.uint8)], axis=1)


def _write_cifar10_bin(root: Path) -> tuple[np.ndarray, np.ndarray]:
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    train = _records(N_TRAIN, 1, seed=1)
    for i, chunk in enumerate(np.split(train, 5), start=1):
        (folder / f"data_batch_{i}.bin").write_bytes(chunk.tobytes())
    test = _records(N_TEST, 1, seed=2)
    (folder / "test_batch.bin").write_bytes(test.tobytes())
    return train, test


def test_cifar10_binary(tmp_path: Path) -> None:
    train, test = _write_cifar10_bin(tmp_path)
    ds = read_dataset(DataConfig(name="cifar10", root=str(tmp_path)))
    assert ds.x_train.shape == (N_TRAIN, 3, 32, 32) and ds.x_test.shape == (N_TEST, 3, 32, 32)
    assert ds.y_train.tolist() == train[:, 0].tolist() and ds.y_test.tolist() == test[:, 0].tolist()
    # Byte 1 + c*1024 + row*32 + col of record i is pixel (c, row, col) of image i.
    i, c, row, col = 13, 1, 2, 3
    raw = train[i, 1 + c * 1024 + row * 32 + col]
    mean, std = vision_data.STATS["cifar10"]
    assert ds.x_train[i, c, row, col].item() == pytest.approx((raw / 255 - mean[c]) / std[c], abs=1e-6)
    torch.testing.assert_close(ds.x_test, _normalized(test[:, 1:].reshape(-1, 3, 32, 32), "cifar10"))
    assert ds.num_classes == 10 and ds.augment is not None


def _write_pickle(path: Path, entry: dict, protocol: int) -> None:
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=protocol)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_python(tmp_path: Path, protocol: int) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    train, test = _records(N_TRAIN, 1, seed=3), _records(N_TEST, 1, seed=4)
    for i, chunk in enumerate(np.split(train, 5), start=1):  # str keys, as Python 2 files decode
        _write_pickle(folder / f"data_batch_{i}", {"batch_label": "training batch", "data": chunk[:, 1:],
                                                   "labels": [int(v) for v in chunk[:, 0]]}, protocol)
    _write_pickle(folder / "test_batch", {"data": test[:, 1:], "labels": [int(v) for v in test[:, 0]]}, protocol)
    ds = read_dataset(DataConfig(name="cifar10", root=str(tmp_path)))
    torch.testing.assert_close(ds.x_train, _normalized(train[:, 1:].reshape(-1, 3, 32, 32), "cifar10"))
    assert ds.y_train.tolist() == train[:, 0].tolist() and ds.y_test.tolist() == test[:, 0].tolist()


def test_cifar100_binary_uses_fine_labels(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    train, test = _records(N_TRAIN, 2, seed=5), _records(N_TEST, 2, seed=6)
    (folder / "train.bin").write_bytes(train.tobytes())
    (folder / "test.bin").write_bytes(test.tobytes())
    ds = read_dataset(DataConfig(name="cifar100", root=str(tmp_path)))
    assert ds.num_classes == 100
    assert ds.y_train.tolist() == train[:, 1].tolist() and ds.y_test.tolist() == test[:, 1].tolist()
    torch.testing.assert_close(ds.x_train, _normalized(train[:, 2:].reshape(-1, 3, 32, 32), "cifar100"))


def test_cifar100_python_bytes_keys(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    train, test = _records(N_TRAIN, 2, seed=7), _records(N_TEST, 2, seed=8)
    for name, rec in (("train", train), ("test", test)):
        _write_pickle(folder / name, {b"data": rec[:, 2:], b"coarse_labels": rec[:, 0].tolist(),
                                      b"fine_labels": rec[:, 1].tolist()}, pickle.HIGHEST_PROTOCOL)
    ds = read_dataset(DataConfig(name="cifar100", root=str(tmp_path)))
    assert ds.y_train.tolist() == train[:, 1].tolist() and ds.y_test.tolist() == test[:, 1].tolist()
    torch.testing.assert_close(ds.x_test, _normalized(test[:, 2:].reshape(-1, 3, 32, 32), "cifar100"))


class _Evil:
    """Pickles as a call to os.system: what a malicious 'dataset' file would contain."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_restricted_unpickler_refuses_os_system(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"data": _Evil(marker), "labels": [0]})
    with pytest.raises(pickle.UnpicklingError, match="system"):
        vision_data.restricted_load(io.BytesIO(payload))
    assert not marker.exists()
    # The same file in a dataset folder fails with a ConfigError naming it; nothing runs.
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(payload)
    with pytest.raises(ConfigError, match="data_batch_1.*refusing"):
        read_dataset(DataConfig(name="cifar10", root=str(tmp_path)))
    assert not marker.exists()


def test_restricted_unpickler_loads_plain_numpy() -> None:
    entry = {"data": np.arange(12, dtype=np.uint8).reshape(3, 4), "x": np.float32(2.5), "labels": [1, 2]}
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        out = vision_data.restricted_load(io.BytesIO(pickle.dumps(entry, protocol=protocol)))
        np.testing.assert_array_equal(out["data"], entry["data"])
        assert out["x"] == np.float32(2.5) and out["labels"] == [1, 2]


# --------------------------------------------------------------------------- STL-10

def test_stl10_binary_column_major(tmp_path: Path) -> None:
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    rng = _rng(9)
    files = {}
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        files[split] = rng.integers(0, 256, n * 3 * 96 * 96, dtype=np.uint8)
        files[split + "_y"] = rng.integers(1, 11, n, dtype=np.uint8)  # labels 1..10 on disk
        (folder / f"{split}_X.bin").write_bytes(files[split].tobytes())
        (folder / f"{split}_y.bin").write_bytes(files[split + "_y"].tobytes())
    ds = read_dataset(DataConfig(name="stl10", root=str(tmp_path)))
    assert ds.x_train.shape == (N_TRAIN, 3, 96, 96) and ds.x_test.shape == (N_TEST, 3, 96, 96)
    assert ds.y_train.tolist() == (files["train_y"].astype(int) - 1).tolist()
    assert ds.y_test.min() >= 0 and ds.y_test.max() <= 9
    # Each channel is stored column by column: byte n*27648 + c*9216 + col*96 + row is pixel (row, col).
    n, c, row, col = 4, 2, 10, 70
    raw = files["train"][n * 27648 + c * 9216 + col * 96 + row]
    mean, std = vision_data.STATS["stl10"]
    assert ds.x_train[n, c, row, col].item() == pytest.approx((raw / 255 - mean[c]) / std[c], abs=1e-6)
    expected = files["test"].reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)
    torch.testing.assert_close(ds.x_test, _normalized(expected, "stl10"))


# --------------------------------------------------------------------------- missing data

@pytest.mark.parametrize("name,folder", [("mnist", "MNIST/raw"), ("fashion-mnist", "FashionMNIST/raw"),
                                         ("cifar10", "cifar-10-batches-bin"), ("cifar100", "cifar-100-binary"),
                                         ("stl10", "stl10_binary")])
def test_missing_dataset_says_where_and_how(tmp_path: Path, name: str, folder: str) -> None:
    with pytest.raises(ConfigError) as info:
        read_dataset(DataConfig(name=name, root=str(tmp_path)))
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / folder) in message
    assert "--download" in message and "data.download=true" in message


def test_partial_dataset_names_the_missing_file(tmp_path: Path) -> None:
    _write_mnist(tmp_path, "MNIST", gz=False)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ConfigError, match="t10k-labels-idx1-ubyte"):
        read_dataset(DataConfig(name="mnist", root=str(tmp_path)))


# --------------------------------------------------------------------------- augmentation

def _batch() -> torch.Tensor:
    return torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def test_augment_shape_and_determinism() -> None:
    batch = _batch()
    aug = lambda seed: vision_data.random_crop_flip(batch, torch.Generator().manual_seed(seed), 4, (0.0, 0.0, 0.0))
    out = aug(1)
    assert out.shape == batch.shape and out.dtype == batch.dtype
    torch.testing.assert_close(out, aug(1))
    assert not torch.equal(out, aug(2))


def test_augment_is_a_padded_crop_or_its_mirror() -> None:
    """Every output image equals one window of the padded input, possibly flipped left-right."""
    batch, pad, fill = _batch(), 4, (-1.0, -2.0, -3.0)
    out = vision_data.random_crop_flip(batch, torch.Generator().manual_seed(3), pad, fill)
    padded = torch.tensor(fill).view(1, 3, 1, 1).repeat(6, 1, 16 + 2 * pad, 16 + 2 * pad)
    padded[:, :, pad:-pad, pad:-pad] = batch
    for img, src in zip(out, padded):
        windows = [src[:, y:y + 16, x:x + 16] for y in range(2 * pad + 1) for x in range(2 * pad + 1)]
        assert any(torch.equal(img, w) or torch.equal(img, w.flip(-1)) for w in windows)


def test_cifar_augment_pads_with_black(tmp_path: Path) -> None:
    _write_cifar10_bin(tmp_path)
    ds = read_dataset(DataConfig(name="cifar10", root=str(tmp_path)))
    black = _normalized(np.zeros((1, 3, 1, 1), dtype=np.uint8), "cifar10").view(3)
    assert ds.augment.keywords["padding"] == 4
    torch.testing.assert_close(torch.tensor(ds.augment.keywords["fill"]), black)
    out = ds.augment(ds.x_train, torch.Generator().manual_seed(0))
    assert out.shape == ds.x_train.shape


# --------------------------------------------------------------------------- download (offline)

def _tarball(path: Path, members: dict[str, bytes], symlink: str | None = None) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)


@pytest.mark.parametrize("bad", ["../escape.bin", "/abs.bin", "link"])
def test_extract_rejects_unsafe_members(tmp_path: Path, bad: str) -> None:
    archive = tmp_path / "a.tar.gz"
    root = tmp_path / "root"
    root.mkdir()
    if bad == "link":
        _tarball(archive, {"ok/file": b"x"}, symlink="ok/link")
    else:
        _tarball(archive, {"ok/file": b"x", bad: b"y"})
    with pytest.raises(ConfigError, match="unsafe"):
        vision_data.extract_tar(archive, root)
    assert not (root / "ok").exists() and not (tmp_path / "escape.bin").exists()
    assert list(root.iterdir()) == []  # the staging folder is cleaned up


def test_download_path_end_to_end_with_file_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`data.download=true` fetches, checks the md5, extracts and loads (a file:// URL, no network)."""
    import hashlib

    source = tmp_path / "source"
    train, test = _write_cifar10_bin(source)
    archive = tmp_path / "cifar-10-binary.tar.gz"
    members = {f"cifar-10-batches-bin/{p.name}": p.read_bytes() for p in (source / "cifar-10-batches-bin").iterdir()}
    _tarball(archive, members)
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    root = tmp_path / "root"
    remote = vision_data.Remote(archive.as_uri(), md5, "cifar-10-binary.tar.gz")
    monkeypatch.setitem(vision_data.REMOTES, "cifar10", [remote])
    with pytest.raises(ConfigError, match="--download"):  # never fetched unless asked
        read_dataset(DataConfig(name="cifar10", root=str(root)))
    ds = read_dataset(DataConfig(name="cifar10", root=str(root), download=True))
    assert ds.y_train.tolist() == train[:, 0].tolist() and ds.y_test.tolist() == test[:, 0].tolist()
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-bin"]  # archive and temp files gone

    monkeypatch.setitem(vision_data.REMOTES, "cifar10", [vision_data.Remote(archive.as_uri(), "0" * 32, "x.tar.gz")])
    with pytest.raises(ConfigError, match="corrupt"):
        vision_data.download("cifar10", tmp_path / "other")
    assert list((tmp_path / "other").iterdir()) == []


# --------------------------------------------------------------------------- presets

@pytest.mark.parametrize("name,dataset", [("cifar10-resnet18", "cifar10"), ("cifar100-resnet18", "cifar100")])
def test_resnet18_presets_target_the_last_two_bn_layers(name: str, dataset: str) -> None:
    config = preset(name)
    assert config.data.name == dataset and config.classifier.arch == "resnet18"
    assert config.autoencoder.channels == (64, 128, 256, 256, 32) and config.autoencoder.latent_dim == 128
    assert config.collect.num_checkpoints == 200 and config.collect.steps_per_checkpoint == 1
    model = build_classifier(config.classifier.arch, (3, 32, 32), 100 if dataset == "cifar100" else 10)
    target = select_target(model, config.collect.target)
    assert target == ["layer4.1.bn1.weight", "layer4.1.bn1.bias", "layer4.1.bn2.weight", "layer4.1.bn2.bias"]
    assert layout_of(model, target).dim == 2048


def test_mnist_cnn_preset() -> None:
    config = preset("mnist-cnn")
    assert config.data.name == "mnist" and config.classifier.arch == "cnn"
