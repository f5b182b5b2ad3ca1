"""MNIST-1D: generated locally and deterministically, cached exactly, damage is a one-line error,
and the `mnist1d` preset learns far above chance (10 %) end to end."""
from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import MICRO_OVERRIDES

from pdiff.cli import main
from pdiff.core.config import DataConfig, with_overrides
from pdiff.core.errors import ConfigError
from pdiff.core.presets import preset
from pdiff.judge.evaluate import split_shared_prefix
from pdiff.pipeline.report import metrics_table
from pdiff.pipeline.runner import run_pipeline
from pdiff.zoo import mnist1d as m1d
from pdiff.zoo.datasets import load_dataset
from pdiff.zoo.params import select_target


@pytest.fixture(scope="module")
def cached_root(tmp_path_factory) -> Path:
    """A data root holding the generated cache (generated once for the module: about 2 s)."""
    root = tmp_path_factory.mktemp("mnist1d-data")
    m1d.load_arrays(DataConfig(name="mnist1d", root=str(root)))
    return root


def _root_with_cache(cached_root: Path, dst: Path) -> Path:
    """A private data root with a copy of the cache, for tests that damage it or run on it."""
    dst.mkdir()
    shutil.copy(m1d.cache_path(DataConfig(root=str(cached_root))), dst)
    return dst


def test_generation_args_are_the_packages_defaults_without_the_download_url() -> None:
    from mnist1d.data import get_dataset_args

    defaults = get_dataset_args(as_dict=True)
    assert "url" in defaults and "url" not in m1d.GENERATION_ARGS
    assert m1d.GENERATION_ARGS == {k: v for k, v in defaults.items() if k != "url"}


def test_generation_is_deterministic_equals_make_dataset_and_keeps_global_rng(cached_root: Path) -> None:
    from mnist1d.data import get_dataset_args, make_dataset

    random.seed(123)
    np.random.seed(123)
    before = (random.random(), np.random.rand())
    random.seed(123)
    np.random.seed(123)
    first = m1d.generate()
    assert (random.random(), np.random.rand()) == before  # make_dataset reseeds globals; we restore them
    direct = make_dataset(get_dataset_args())
    expected = {"x_train": direct["x"], "y_train": direct["y"], "x_test": direct["x_test"], "y_test": direct["y_test"]}
    cached = m1d.load_arrays(DataConfig(root=str(cached_root)))
    for key, value in expected.items():
        np.testing.assert_array_equal(first[key], value)
        np.testing.assert_array_equal(cached[key], value)
    assert first["x_train"].shape == (4000, 40) and first["x_test"].shape == (1000, 40)


def test_cache_round_trips_exactly_and_is_read_instead_of_regenerating(cached_root: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data"
    config = DataConfig(name="mnist1d", root=str(root))
    fresh = m1d.load_arrays(config)  # generates and writes the cache
    path = m1d.cache_path(config)
    assert path.name == f"mnist1d-{m1d.args_hash()}.safetensors" and path.is_file()
    assert [p.name for p in root.iterdir()] == [path.name]  # no temporary file left behind

    def fail(*_args, **_kwargs):
        raise AssertionError("regenerated although the cache exists")

    monkeypatch.setattr(m1d, "generate", fail)
    again = m1d.load_arrays(config)
    for key in m1d.ARRAYS:
        assert again[key].dtype == fresh[key].dtype
        np.testing.assert_array_equal(again[key], fresh[key])
    first, second = load_dataset(config), load_dataset(config)
    torch.testing.assert_close(first.x_train, second.x_train, rtol=0, atol=0)


def test_dataset_tensors_are_standardized_signals_with_int64_labels(cached_root: Path) -> None:
    data = load_dataset(DataConfig(name="mnist1d", root=str(cached_root)))
    assert len(data.x_train) + len(data.x_val) == 4000 and abs(len(data.x_val) - 400) <= 5  # 10 % of each class
    assert data.x_train.shape[1:] == data.x_val.shape[1:] == (1, 40)
    assert data.x_test.shape == (1000, 1, 40)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert data.num_classes == 10 and data.y_test.unique().tolist() == list(range(10))
    whole = torch.cat([data.x_train, data.x_val])  # standardized with the whole training file's statistics
    assert abs(whole.mean().item()) < 1e-4 and abs(whole.std().item() - 1) < 1e-3


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other-args"])
def test_damaged_cache_is_a_one_line_error_naming_the_file(cached_root: Path, tmp_path: Path, damage: str) -> None:
    root = _root_with_cache(cached_root, tmp_path / "data")
    config = DataConfig(name="mnist1d", root=str(root))
    path = m1d.cache_path(config)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:5000])
    elif damage == "garbage":
        path.write_bytes(b"not a safetensors file\n" * 10)
    else:  # a valid file made with other arguments, renamed by hand
        arrays = m1d.read_cache(path, m1d.GENERATION_ARGS)
        m1d.write_cache(path, arrays, m1d.GENERATION_ARGS | {"seed": 7})
    with pytest.raises(ConfigError) as info:
        load_dataset(config)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "delete it" in message


def test_damaged_cache_reaches_the_command_line_as_one_line(cached_root: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    root = _root_with_cache(cached_root, tmp_path / "data")
    path = m1d.cache_path(DataConfig(root=str(root)))
    path.write_bytes(path.read_bytes()[:100])
    code = main(["run", "--preset", "mnist1d", "--out", str(tmp_path / "run"), "--quiet", "--device", "cpu",
                 "--data-root", str(root)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert str(path) in err


def test_cnn1d_target_is_last_bn_and_head_after_a_shared_prefix() -> None:
    from pdiff.zoo.classifiers import build_classifier

    config = preset("mnist1d")
    model = build_classifier(config.classifier.arch, (1, 40), 10)
    target = select_target(model, config.collect.target)
    assert target == ["bn3.weight", "bn3.bias", "head.weight", "head.bias"]
    assert sum(dict(model.named_parameters())[n].numel() for n in target) == 394
    prefix, suffix = split_shared_prefix(model, target)
    assert prefix.names[-1] == "conv3" and suffix.names[0] == "bn3"


def test_preset_runs_end_to_end_far_above_chance(cached_root: Path, tmp_path: Path) -> None:
    root = _root_with_cache(cached_root, tmp_path / "data")
    tiny = MICRO_OVERRIDES | {"data.root": str(root), "autoencoder.steps": 150, "diffusion.steps": 150}
    tiny.pop("classifier.epochs")  # keep the preset's 3 epochs (about 1 s here): 2 leave it near 75 %
    config = with_overrides(preset("mnist1d"), tiny)
    assert config.data.name == "mnist1d" and config.classifier.arch == "cnn1d"
    card = metrics_table(run_pipeline(tmp_path / "run", config)).rows
    assert card["zoo"]["median"] > 70, card["zoo"]
    assert card["generated"]["median"] > 50, card["generated"]  # chance is 10 %
