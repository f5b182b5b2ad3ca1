"""The two errors a user sees, each a one-line message that says what to do.

They live apart from the code that raises them so that every wing can raise them without
importing another: `ConfigError` for a setting or name that cannot work (raised before anything
is written), `RunError` for a run directory that is missing, damaged, partial or from another
config.
"""
from __future__ import annotations


class ConfigError(ValueError):
    """A config value, override or name is invalid; the message says what to do."""


class RunError(RuntimeError):
    """A run directory is missing, damaged, partial or from another config."""
