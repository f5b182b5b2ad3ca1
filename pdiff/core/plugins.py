"""Your own datasets, classifiers, presets and samplers, in every process that needs them.

Registrations (`pdiff.register_tensors`, `register_dataset`, `register_classifier`,
`register_preset`, `register_sampler`) live in the Python process that made them. A module that
makes them at import is a *plugin*: name it with `--plugin MODULE` on the command line, or in
`$PDIFF_PLUGINS` (comma-separated) for the CLI, the app and the runs the app launches (they
inherit the environment). MODULE is an importable module name (`my_project.pdiff_setup`) or the
path of a `.py` file. Plugins are code you chose to run: they are never taken from a run folder.

`check_names(config)` then checks every registry name a run uses before its first stage, so a
missing registration fails in one line at once instead of minutes later at evaluate.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .registry import CLASSIFIERS, DATASETS

ENV = "PDIFF_PLUGINS"
_loaded: dict[str, Any] = {}


def from_env() -> list[str]:
    """The plugin names in $PDIFF_PLUGINS (comma- or whitespace-separated)."""
    raw = os.environ.get(ENV, "")
    return [name for name in raw.replace(",", " ").split() if name]


def load(names: list[str] | None = None) -> list[str]:
    """Import each plugin once (module name or .py path); $PDIFF_PLUGINS when `names` is None.
    A plugin that cannot be imported is a one-line ConfigError."""
    names = from_env() if names is None else names
    for name in names:
        if name not in _loaded:
            _loaded[name] = _import(name)
    return names


def _import(name: str) -> Any:
    try:
        if name.endswith(".py") or os.sep in name:
            path = Path(name).expanduser().resolve()
            if not path.is_file():
                raise FileNotFoundError(f"no file {path}")
            module_name = f"pdiff_plugin_{path.stem}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
            return module
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.append(os.getcwd())  # like `python -m`: modules beside you are importable
        return importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 (the plugin's own error, whatever it is: one line)
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise ConfigError(f"plugin {name!r} could not be loaded ({exc.__class__.__name__}: {first}); "
                          f"check --plugin / ${ENV} and that the module is importable") from None


def check_names(config: Any) -> None:
    """Every dataset and classifier name the config uses is registered in this process."""
    hint = (f"registrations live in the process that made them: load yours with --plugin MODULE or "
            f"{ENV}=MODULE (README, 'Bring your own data')")
    if config.data.name not in DATASETS:
        raise ConfigError(f"unknown dataset {config.data.name!r}; {hint}; registered: {', '.join(sorted(DATASETS))}")
    if config.classifier.arch not in CLASSIFIERS:
        raise ConfigError(f"unknown classifier {config.classifier.arch!r}; {hint}; "
                          f"registered: {', '.join(sorted(CLASSIFIERS))}")
