"""Name registries: what the names in a config (dataset, classifier, autoencoder, denoiser,
sampler) stand for.

A config names its parts (`data.name="mnist1d"`, `classifier.arch="cnn"`, `sample.sampler="ddim"`)
and validation checks those names long before anything is built. Config lives in the lowest wing
and must not import the code that builds the parts (the wings above import config, never the
other way), so each registry lists its built-in entries as `"module:attribute"` strings, imported
the first time one is asked for, and holds what a user registers (`pdiff.register_dataset`,
`register_classifier`, `register_sampler`, plugins) as objects. A name registered later wins over
a built-in of the same name.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

from .errors import ConfigError

_MISSING = object()


class Registry:
    """Names of one kind of part -> the object that builds it (a loader, a factory, a class).

    It reads like a dict (`name in r`, `r[name]`, `r.get(name, default)`, `r[name] = obj`,
    `del r[name]`, `r.pop(name, default)`); deleting a name removes what was registered under it,
    and a built-in of the same name shows through again."""

    def __init__(self, kind: str, builtins: dict[str, str]) -> None:
        self.kind = kind
        self._builtins = dict(builtins)  # name -> "module:attribute", imported on first use
        self._registered: dict[str, Any] = {}

    def register(self, name: str, obj: Any) -> None:
        self._registered[name] = obj

    def names(self) -> list[str]:
        """Built-in names first, in their order, then registered ones."""
        return list(dict.fromkeys([*self._builtins, *self._registered]))

    def __contains__(self, name: object) -> bool:
        return name in self._registered or name in self._builtins

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def get(self, name: str, default: Any = _MISSING) -> Any:
        """The object behind `name`; an unknown name returns `default` when one is given, else is a
        one-line ConfigError listing the valid ones."""
        if name in self._registered:
            return self._registered[name]
        if name not in self._builtins:
            if default is not _MISSING:
                return default
            raise ConfigError(self.unknown(name))
        module, _, attribute = self._builtins[name].partition(":")
        return getattr(importlib.import_module(module), attribute)

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __setitem__(self, name: str, obj: Any) -> None:
        self.register(name, obj)

    def __delitem__(self, name: str) -> None:
        del self._registered[name]

    def pop(self, name: str, default: Any = _MISSING) -> Any:
        """Remove what was registered under `name` (a built-in is not removable)."""
        if default is _MISSING:
            return self._registered.pop(name)
        return self._registered.pop(name, default)

    def items(self) -> list[tuple[str, Any]]:
        return [(name, self.get(name)) for name in self.names()]

    def unknown(self, name: str) -> str:
        return f"unknown {self.kind} {name!r}; valid {self.kind}s: {', '.join(sorted(self.names()))}"


DATASETS = Registry("dataset", {
    "digits": "pdiff.zoo.datasets:load_digits_dataset",
    "mnist1d": "pdiff.zoo.mnist1d:load_mnist1d",
    "mnist": "pdiff.zoo.vision:load_mnist",
    "fashion-mnist": "pdiff.zoo.vision:load_fashion_mnist",
    "cifar10": "pdiff.zoo.vision:load_cifar10",
    "cifar100": "pdiff.zoo.vision:load_cifar100",
    "stl10": "pdiff.zoo.vision:load_stl10",
})
CLASSIFIERS = Registry("classifier", {
    "cnn": "pdiff.zoo.classifiers:small_cnn",
    "mlp": "pdiff.zoo.classifiers:mlp",
    "cnn1d": "pdiff.zoo.classifiers:cnn1d",
    "resnet18": "pdiff.zoo.architectures:resnet18",
    "resnet18-imagenet": "pdiff.zoo.architectures:resnet18_imagenet",
    "vit-small": "pdiff.zoo.architectures:vit_small",
    "convnext-tiny": "pdiff.zoo.architectures:convnext_tiny",
})
AUTOENCODERS = Registry("autoencoder", {
    "mlp": "pdiff.generator.autoencoder:MLPAutoencoder",
    "conv": "pdiff.generator.autoencoder:ParamAutoencoder",
})
DENOISERS = Registry("denoiser", {
    "mlp": "pdiff.generator.denoisers:build_mlp_denoiser",
    "conv": "pdiff.generator.denoisers:build_conv_denoiser",
})
SAMPLERS = Registry("sampler", {
    "ddpm": "pdiff.generator.samplers:DDPMSampler",
    "ddim": "pdiff.generator.samplers:DDIMSampler",
    "euler": "pdiff.generator.flow:EulerSampler",
    "heun": "pdiff.generator.flow:HeunSampler",
})
PROCESSES = Registry("diffusion kind", {
    "ddpm": "pdiff.generator.diffusion:build_gaussian",
    "flow": "pdiff.generator.flow:build_flow",
})
