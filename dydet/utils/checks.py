"""Checks of the environment a feature needs (optional packages), with one-line errors that say how to fix them."""

from __future__ import annotations

import importlib
from types import ModuleType

from dydet.utils.errors import DependencyError


def require_package(module: str, feature: str, extra: str) -> ModuleType:
    """Import an optional package a feature needs, or raise a `DependencyError` saying how to install it.

    Args:
        module (str): The module to import, e.g. 'onnx'.
        feature (str): What needs it, for the message, e.g. 'ONNX export'.
        extra (str): The dydet extra that installs it, e.g. 'export' (``pip install 'dydet[export]'``).

    Returns:
        (ModuleType): The imported module.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise DependencyError(
            f"{feature} needs the '{module}' package, which is not installed: pip install 'dydet[{extra}]'"
        ) from e
