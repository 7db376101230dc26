"""Validation of dydet's run-time routing arguments, with one-line errors that say how to fix them."""

from __future__ import annotations

import importlib
import math
from types import ModuleType

from dydet.utils.errors import ArgumentError, DependencyError


def check_unit_interval(name: str, value: float, hint: str = "") -> float:
    """Return `value` as a float if it is a number in [0, 1], else raise a ValueError naming `name`.

    Args:
        name (str): Argument name for the message, e.g. 'threshold'.
        value (float): The value to check.
        hint (str): What the value means, appended to the message.

    Returns:
        (float): The value as a float.
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if isinstance(value, bool) or not 0.0 <= v <= 1.0:
        raise ArgumentError(f"{name}={value!r} is invalid: it must be a number in [0, 1]{hint}")
    return v


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
