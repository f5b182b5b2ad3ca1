"""Run configuration: frozen dataclasses with small-CPU defaults and named presets.

A run is fully described by one `RunConfig`. It is stored in the run directory as plain JSON
(`asdict`), never pickled, and rebuilt with `config_from_dict`. Derived sizes (parameter count,
padded length) are computed by the stages, never written back into the config.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .errors import ConfigError
from .limits import check_bounds
from .registry import AUTOENCODERS, DENOISERS, PROCESSES, SAMPLERS


@dataclass(frozen=True)
class DataConfig:
    name: str = "digits"
    root: str = "data"  # local folder for torchvision-style datasets
    download: bool = False  # never fetch anything unless the user asks
    train_subset: int = 0  # 0 = whole training split
    test_subset: int = 0
    val_fraction: float = 0.1  # share of each class's training samples kept for validation (when the data have no split)


@dataclass(frozen=True)
class ClassifierConfig:
    arch: str = "cnn"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4


@dataclass(frozen=True)
class CollectConfig:
    """Stage 1: keep training only the target parameters and save K checkpoints."""

    target: str = "last-norm:1,head.*"  # comma-separated selectors, see params.select_target
    num_checkpoints: int = 200
    steps_per_checkpoint: int = 1
    optimizer: str = "adamw"  # "adamw" (p-diff v2, constant lr) or "sgd" (v1)
    lr: float = 0.03
    momentum: float = 0.9
    weight_decay: float = 5e-4
    heldout_every: int = 0  # >0: every n-th checkpoint is kept out of AE/diffusion training
    seeds: int = 1  # >1: the zoo mixes classifiers trained from several seeds
    reinit: bool = False  # restart the target from its initial values: a zoo from chance to trained
    fresh: int = 100  # checkpoints kept from an independent SGD run (same start and recipe, another data
    #                   order, as long as the zoo's; at most that many) that the generator never sees: the
    #                   yardstick of fresh training; 0 = none
    fresh_reinit: bool = False  # start that run from a new initialisation of the target instead


@dataclass(frozen=True)
class ZooConfig:
    """Stage `import`: a zoo of checkpoints trained elsewhere, instead of `collect` training one.

    Set `dir` and the run's first stage reads the state dicts in that folder (see zoo/checkpoints.py
    and zoo/metadata.py for the files and their optional zoo.json / zoo.csv metadata); the `collect`
    and `classifier` training keys then play no part (only `classifier.arch` names the network).
    """

    dir: str = ""  # folder of state dicts (.safetensors, .pt, .pth); "" = collect a zoo by training
    target: str = "all"  # "all": every floating-point tensor of each state dict (BatchNorm statistics too);
    #                      or selectors as collect.target, with the buffers of the layers they select
    fresh: str = "auto"  # the fresh-training reference: "auto" (whole runs, the last fifth, when the metadata
    #                      names two or more runs), "none", or comma-separated run ids
    align: str = "auto"  # store the checkpoints neuron-aligned to the first run's last one, each run moved as
    #                      one (generators then learn from aligned runs): "auto" (unless the metadata names one
    #                      run only), "on" or "off"


@dataclass(frozen=True)
class AutoencoderConfig:
    """Stage 2: the parameter autoencoder (see autoencoder.py).

    The defaults are the autoencoder that keeps the zoo's differences (notebook 07): an MLP to a
    16-value latent, on vectors centred on the zoo's mean. `arch="conv"` with `centre=False` is
    p-diff v2's 1D-conv autoencoder on per-tensor z-scored vectors (`paper` preset).
    """

    arch: str = "mlp"  # "mlp" or "conv" (p-diff v2)
    hidden: tuple[int, ...] = (256,)  # mlp: hidden widths of the encoder (the decoder mirrors them)
    channels: tuple[int, ...] = (16, 32, 64, 64)  # conv: channels per level
    kernel: int = 7  # conv: kernel size
    centre: bool = True  # subtract the zoo's mean per coordinate and divide by one spread (else per-tensor z-score)
    latent_dim: int = 16
    input_noise: float = 0.001
    latent_noise: float = 0.1
    steps: int = 2000
    batch_size: int = 200
    lr: float = 2e-3
    weight_decay: float = 2e-6


# p-diff v2's autoencoder as this project ran it before the MLP default: the `paper`, whole-network
# and ResNet presets start from it, and configs stored without `autoencoder.arch` meant it.
CONV_AUTOENCODER: dict[str, Any] = {
    "autoencoder.arch": "conv", "autoencoder.centre": False, "autoencoder.latent_dim": 64,
    "autoencoder.steps": 1200, "autoencoder.batch_size": 50, "autoencoder.lr": 1e-3,
}


@dataclass(frozen=True)
class DiffusionConfig:
    """Stage 3: DDPM on the autoencoder's latents, epsilon prediction.

    The defaults are the generator that covers the zoo (notebook 07): an MLP denoiser with the
    Gaussian skip, on latents whitened in their principal subspace. `denoiser="conv"` with
    `whiten=0` is p-diff's own (its samples collapse to a fraction of the zoo's spread).
    """

    kind: str = "ddpm"  # "ddpm" (epsilon prediction) or "flow" (flow matching, rectified flow; flow.py)
    timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 2e-2
    denoiser: str = "mlp"  # "mlp" (residual MLP + Gaussian skip) or "conv" (p-diff's 1D-conv U-Net)
    width: int = 128  # mlp: hidden width
    depth: int = 2  # mlp: residual blocks
    channels: tuple[int, ...] = (16, 32, 32)  # conv: channels per level
    kernel: int = 7  # conv: kernel size
    time_dim: int = 128
    whiten: float = 0.9999  # share of latent variance kept by the whitened axes it diffuses on; 0 = one global scale
    condition: str = "none"  # "accuracy": the denoiser also sees each checkpoint's validation accuracy (mlp only)
    cond_drop: float = 0.1  # share of training batches' conditions dropped (classifier-free guidance)
    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-3
    snapshots: int = 8  # denoiser weights kept at this many log-spaced training steps (the last is the final one)


@dataclass(frozen=True)
class SampleConfig:
    num_models: int = 100
    sampler: str = "ddpm"  # a name in samplers.SAMPLERS: "ddpm" (ancestral) or "ddim"
    steps: int = 0  # sampling steps; 0 = the sampler's default (DDPM: all T, DDIM: 50)
    eta: float = 0.0  # DDIM only: 0 deterministic, 1 DDPM-like
    accuracy: float = -1.0  # requested test accuracy (percent) for a conditional denoiser; < 0: none
    guidance: float = 0.0  # classifier-free guidance scale: 0 unconditional, 1 conditional, > 1 guided
    clip_x0: bool = False  # bound x0-predictions to the training latents' range (+10%) while sampling
    trajectory_models: int = 4  # how many samples keep their x0-prediction along the way
    trajectory_points: int = 20  # at how many sampling steps


@dataclass(frozen=True)
class BaselineConfig:
    """Memorization-study baselines (arXiv 2506.07998), evaluated like generated models."""

    enabled: bool = True
    num_models: int = 100  # per baseline group
    noise_sigmas: tuple[float, ...] = (0.01, 0.1)
    relative_sigmas: tuple[float, ...] = (0.01, 0.1)
    average_m: int = 16
    copy_noise: float = 0.01  # "copies": checkpoints + this share of each coordinate's zoo spread (made always)


@dataclass(frozen=True)
class EvaluateConfig:
    chunk_size: int = 0  # models per batched pass; 0 = choose from available memory
    batch_size: int = 0  # test samples per pass; 0 = whole test split


@dataclass(frozen=True)
class AnalysisConfig:
    umap: bool = True
    umap_neighbors: int = 15
    bootstrap: int = 1000
    trajectory: bool = True  # place the denoising trajectory in the parameter PCA
    snapshot_models: int = 50  # models sampled from each denoiser snapshot (the dynamics stage)
    snapshot_steps: int = 50  # their sampling steps, with the run's sampler (respaced); 0 = sample.steps
    align: str = "auto"  # distances, parameter projections and fidelity between neuron-aligned models:
    #                      "auto" (when the zoo mixes independent runs), "on" or "off"


@dataclass(frozen=True)
class RunConfig:
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"  # "bf16": autocast for training and evaluation (meant for GPUs)
    generate: bool = True  # False: no generator; the zoo stage, evaluate and analyse only (a zoo explored alone)
    data: DataConfig = field(default_factory=DataConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    zoo: ZooConfig = field(default_factory=ZooConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    baselines: BaselineConfig = field(default_factory=BaselineConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)


def with_overrides(config: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    for key, value in overrides.items():
        config = _apply_override(config, key, value)
    validate(config)
    return config


def parse_set(items: list[str]) -> dict[str, Any]:
    """Parse `key=value` strings from the command line (values are JSON or plain strings)."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r} (e.g. --set autoencoder.steps=500)")
        try:
            overrides[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key.strip()] = raw
    return overrides


def _apply_override(config: Any, key: str, value: Any, full: str = "") -> Any:
    full = full or key
    head, _, rest = key.partition(".")
    names = {f.name: f for f in fields(config)}
    if head not in names:
        raise ConfigError(f"unknown config key {full!r}; valid keys here: {', '.join(names)}")
    current = getattr(config, head)
    if rest:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"config key {full!r} does not exist: {head!r} has no sub-keys")
        return replace(config, **{head: _apply_override(current, rest, value, full)})
    if dataclasses.is_dataclass(current):
        raise ConfigError(f"config key {full!r} is a section; set one of its keys, e.g. {full}.{fields(current)[0].name}")
    hint = typing.get_type_hints(type(config))[head]
    return replace(config, **{head: _coerce(full, value, hint)})


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check and convert one override value to the field's declared type."""
    origin = typing.get_origin(hint)
    try:
        if origin is tuple:
            inner = typing.get_args(hint)[0]
            items = value if isinstance(value, (list, tuple)) else [value]
            return tuple(_coerce(key, v, inner) for v in items)
        if hint is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "1", "yes", "false", "0", "no"):
                return str(value).lower() in ("true", "1", "yes")
            raise ValueError
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if hint is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if hint is str:
            return str(value)
    except (TypeError, ValueError):
        pass
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"config key {key!r} expects {name}, got {value!r}")


_POSITIVE = [
    "classifier.epochs", "classifier.batch_size", "classifier.lr",
    "collect.num_checkpoints", "collect.steps_per_checkpoint", "collect.lr", "collect.seeds",
    "autoencoder.kernel", "autoencoder.latent_dim", "autoencoder.steps", "autoencoder.batch_size",
    "autoencoder.lr", "diffusion.timesteps", "diffusion.kernel", "diffusion.time_dim",
    "diffusion.steps", "diffusion.batch_size", "diffusion.lr", "diffusion.width", "diffusion.depth",
    "sample.num_models",
    "baselines.num_models", "baselines.average_m", "analysis.umap_neighbors",
]
_NON_NEGATIVE = [
    "classifier.momentum", "classifier.weight_decay", "collect.momentum", "collect.weight_decay",
    "collect.heldout_every", "collect.fresh", "autoencoder.input_noise", "autoencoder.latent_noise",
    "autoencoder.weight_decay", "baselines.copy_noise", "diffusion.whiten", "sample.steps", "sample.eta",
    "sample.trajectory_models", "sample.trajectory_points", "diffusion.snapshots", "analysis.snapshot_models",
    "analysis.snapshot_steps", "evaluate.chunk_size", "evaluate.batch_size", "analysis.bootstrap",
    "data.train_subset", "data.test_subset",
]


def get(config: Any, key: str) -> Any:
    for part in key.split("."):
        config = getattr(config, part)
    return config


def validate(config: RunConfig) -> None:
    """Reject values no stage can run with, with a message that names the key."""
    check_bounds(config)  # upper bounds of every size, finite floats (before NaN slips past `<= 0`)
    for key in _POSITIVE:
        if get(config, key) <= 0:
            raise ConfigError(f"config key {key!r} must be > 0, got {get(config, key)!r}")
    for key in _NON_NEGATIVE:
        if get(config, key) < 0:
            raise ConfigError(f"config key {key!r} must be >= 0, got {get(config, key)!r}")
    if not 0 < config.data.val_fraction < 0.9:
        raise ConfigError(f"data.val_fraction must be in (0, 0.9): the share of training samples kept for "
                          f"validation, got {config.data.val_fraction!r}")
    d = config.diffusion
    if not 0 < d.beta_start < d.beta_end < 1:
        raise ConfigError("diffusion betas need 0 < beta_start < beta_end < 1")
    if config.sample.sampler not in SAMPLERS:
        raise ConfigError(f"unknown sample.sampler {config.sample.sampler!r}; samplers: {', '.join(SAMPLERS)}")
    if d.kind not in PROCESSES:
        raise ConfigError(f"unknown diffusion.kind {d.kind!r}; kinds: {', '.join(PROCESSES)}")
    walks = getattr(SAMPLERS.get(config.sample.sampler), "kind", "ddpm")
    if walks != d.kind:
        fitting = [name for name, cls in SAMPLERS.items() if getattr(cls, "kind", "ddpm") == d.kind]
        raise ConfigError(f"sample.sampler {config.sample.sampler!r} walks a {walks} process but diffusion.kind is "
                          f"{d.kind!r}; use one of: {', '.join(fitting)} (e.g. --set sample.sampler={fitting[0]})")
    if config.sample.steps > d.timesteps:
        raise ConfigError(f"sample.steps ({config.sample.steps}) cannot exceed diffusion.timesteps ({d.timesteps})")
    _validate_zoo_size(config.collect)
    if config.collect.optimizer not in ("sgd", "adamw"):
        raise ConfigError(f"collect.optimizer must be 'sgd' or 'adamw', got {config.collect.optimizer!r}")
    if not config.autoencoder.channels or not config.diffusion.channels:
        raise ConfigError("autoencoder.channels and diffusion.channels need at least one entry")
    if config.autoencoder.arch not in AUTOENCODERS:
        raise ConfigError(f"unknown autoencoder.arch {config.autoencoder.arch!r}; autoencoders: {', '.join(AUTOENCODERS)}")
    if d.denoiser not in DENOISERS:
        raise ConfigError(f"unknown diffusion.denoiser {d.denoiser!r}; denoisers: {', '.join(DENOISERS)}")
    if not 0 <= d.whiten <= 1:
        raise ConfigError(f"diffusion.whiten must be in [0, 1] (0: one global scale), got {d.whiten!r}")
    _validate_guidance(config)
    _validate_zoo(config)
    if config.autoencoder.kernel % 2 == 0 or d.kernel % 2 == 0:
        raise ConfigError("convolution kernels must be odd (autoencoder.kernel, diffusion.kernel)")
    if config.precision not in ("fp32", "bf16"):
        raise ConfigError(f"precision must be 'fp32' or 'bf16', got {config.precision!r}")
    if config.device not in ("auto", "cpu") and not config.device.startswith("cuda"):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {config.device!r}")


def _validate_guidance(config: RunConfig) -> None:
    d, s = config.diffusion, config.sample
    if d.condition not in ("none", "accuracy"):
        raise ConfigError(f"diffusion.condition must be 'none' or 'accuracy', got {d.condition!r}")
    if d.condition != "none" and d.denoiser != "mlp":
        raise ConfigError("diffusion.condition needs diffusion.denoiser='mlp' (the conv denoiser takes no condition)")
    if not 0 <= d.cond_drop < 1:
        raise ConfigError(f"diffusion.cond_drop must be in [0, 1), got {d.cond_drop!r}")
    if s.accuracy > 100:
        raise ConfigError(f"sample.accuracy is a test accuracy in percent (<= 100), got {s.accuracy!r}")
    if s.accuracy >= 0 and d.condition != "accuracy":
        raise ConfigError("sample.accuracy needs a denoiser conditioned on accuracy: set diffusion.condition=accuracy "
                          "(or leave sample.accuracy at -1)")
    if s.guidance < 0:
        raise ConfigError(f"sample.guidance must be >= 0, got {s.guidance!r}")


ALIGN_MODES = ("auto", "on", "off")


def _validate_zoo(config: RunConfig) -> None:
    """The import keys and the analysis' alignment: known modes; a fresh reference needs run ids."""
    z = config.zoo
    for key, value in (("zoo.align", z.align), ("analysis.align", config.analysis.align)):
        if value not in ALIGN_MODES:
            raise ConfigError(f"{key} must be one of {', '.join(ALIGN_MODES)}, got {value!r}")
    if not z.fresh.strip():
        raise ConfigError("zoo.fresh is empty; use 'auto', 'none' or comma-separated run ids")
    if not z.target.strip():
        raise ConfigError("zoo.target is empty; use 'all' or selectors such as 'last-norm:1,head.*'")


def _validate_zoo_size(collect: CollectConfig) -> None:
    """Every seed contributes checkpoints, and the autoencoder has at least one to train on."""
    k = collect.num_checkpoints
    if collect.seeds > k:
        raise ConfigError(f"collect.seeds ({collect.seeds}) cannot exceed collect.num_checkpoints ({k}): "
                          "each seed contributes checkpoints")
    held = k // collect.heldout_every if collect.heldout_every else 0
    if held == k:
        raise ConfigError(f"collect.heldout_every={collect.heldout_every} holds out all {k} checkpoints, "
                          "leaving none to train on; use 0 (none held out) or a larger value")


def flat_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"section.key": value} of a nested config dict, values in JSON form (tuples as lists)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat |= flat_config(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = json.loads(json.dumps(value))
    return flat


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    return asdict(config)


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Rebuild a config from its JSON form (unknown keys are an error, missing keys default)."""
    if not isinstance(data, dict):
        raise ConfigError("the stored config is not a JSON object")
    return _from_dict(RunConfig, _migrate(data), "")


def _migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Read configs written by earlier versions: `sample.ddim_steps` became `sample.steps`."""
    data = _migrate_defaults(data)
    sample = data.get("sample")
    if isinstance(sample, dict) and "ddim_steps" in sample:
        sample = dict(sample)
        steps = sample.pop("ddim_steps")
        sample.setdefault("steps", steps if sample.get("sampler") == "ddim" else 0)
        data = {**data, "sample": sample}
    return data


def _migrate_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """A stored config says what it ran with, but not the keys added later: fill those with the
    values the old code used, not today's defaults (a run stays the run it was)."""
    old = {"autoencoder": ("arch", {k.partition(".")[2]: v for k, v in CONV_AUTOENCODER.items()}),
           "diffusion": ("denoiser", {"denoiser": "conv", "whiten": 0.0}),
           "sample": ("clip_x0", {"clip_x0": True})}
    out = dict(data)
    for section, (marker, values) in old.items():
        stored = out.get(section)
        if isinstance(stored, dict) and marker not in stored:
            out[section] = {**values, **stored}
    return out


def _from_dict(cls: type, data: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"unknown config keys {sorted(prefix + k for k in unknown)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"config section {prefix}{name!r} is not a JSON object")
            kwargs[name] = _from_dict(hint, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(prefix + name, value, hint)
    return cls(**kwargs)


def config_hash(config: RunConfig) -> str:
    """Short stable fingerprint of a config, used to name runs and detect mismatches."""
    text = json.dumps(config_to_dict(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def describe_keys() -> list[str]:
    """All dotted config keys with their defaults, for `python -m pdiff presets --keys`."""
    out: list[str] = []

    def walk(obj: Any, prefix: str) -> None:
        for f in fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            else:
                out.append(f"{prefix}{f.name}={json.dumps(value)}")

    walk(RunConfig(), "")
    return out

