"""dydet's user errors: one class per kind of bad input, each with a one-line message that names the fix.

Every class derives from `DydetError` *and* from the builtin exception that such an error has always been (a bad
argument is still a `ValueError`, a missing file still a `FileNotFoundError`), so ``except ValueError`` keeps working.
The ``dydet`` command prints any `DydetError` as one ``dydet: <message>`` line with exit code 1 (2 for a `UsageError`, a
bad command line); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class DydetError(Exception):
    """Base class of the errors dydet raises for bad input (never for its own bugs)."""


class ArgumentError(DydetError, ValueError):
    """An argument has the wrong type, is out of range, is not one of its choices or does not apply to the mode."""


class UsageError(ArgumentError):
    """A bad argument name or value as the user gave it (`dydet.cfg.check_args`): the ``dydet`` command exits 2."""


class ConfigError(DydetError, ValueError):
    """A model YAML (or another configuration file) is malformed."""


class DataError(DydetError, ValueError):
    """A dataset (data YAML, splits, labels) cannot be used as given."""


class CheckpointError(DydetError, ValueError):
    """A checkpoint or export folder is not a (suitable) dydet model."""


class MissingFileError(DydetError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class WriteError(DydetError, OSError):
    """dydet cannot write where it was asked to: a full disk, a read-only or unwritable folder."""


class DependencyError(DydetError, ImportError):
    """An optional package a feature needs is not installed (e.g. onnx for export)."""


__all__ = (
    "ArgumentError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DependencyError",
    "DydetError",
    "MissingFileError",
    "UsageError",
    "WriteError",
)
