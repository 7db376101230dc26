"""dydet's configuration: its own arguments (`default.yaml`), model YAMLs (`models/`) and dataset YAMLs (`datasets/`).

`default.yaml` is the one source of dydet's argument defaults, types, ranges and help. This module is its one loader
and `check_args` the one place where argument values are checked: the ``dydet`` command only parses a command line and
hands the dict to the Python API (`DynamicYOLO`, `run_benchmark`), whose methods pass it through `check_args` once;
the rest of dydet trusts the values it returns. A routing value given outside the arguments (``model.routed(x, 0.4)``)
is checked against the same entry of `default.yaml` by `check_value`. It imports neither torch nor Ultralytics at
import time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from dydet.utils.errors import ArgumentError, UsageError

CFG_DIR = Path(__file__).resolve().parent
MODELS_DIR = CFG_DIR / "models"
DATASETS_DIR = CFG_DIR / "datasets"
DEFAULT_CFG_PATH = CFG_DIR / "default.yaml"
MODE_DEFAULTS_KEY = "mode_defaults"  # the entries of default.yaml that are not arguments: this one
LIMITS_KEY = "limits"  # and this one
TYPES = ("int", "float", "bool", "str", "list")


@dataclass(frozen=True)
class Arg:
    """One of dydet's own arguments, as `default.yaml` defines it."""

    name: str
    default: Any
    help: str
    modes: tuple[str, ...] = ()
    type: str | None = None
    choices: tuple[Any, ...] | None = None
    range: tuple[float, float] | None = None

    def check(self, value: Any) -> Any:
        """Check a value of this argument against its type, choices and range.

        Args:
            value (Any): The value given (parsed from the command line or passed to the API).

        Returns:
            (Any): The value, normalized: ints to floats for float arguments, a tuple or a single number to a list
                for list arguments, a choice given as text ('1') to the choice itself (1).

        Raises:
            ArgumentError: If the value has the wrong type, is not one of the choices or is out of range.
        """
        given = value

        def bad(why: str) -> ArgumentError:
            return ArgumentError(f"{self.name}={given!r} {why}")

        if value is None:
            if self.default is None or (self.choices is not None and None in self.choices):
                return None
            raise bad("is not allowed, it needs a value")
        if self.choices is not None:
            for c in self.choices:
                if (type(c) is type(value) and c == value) or (isinstance(value, str) and str(c) == value):
                    return c
            raise bad(f"is not one of {', '.join(map(str, self.choices))}")
        numbers = (int, float)
        items: list[Any] = []
        if self.type == "list":
            value = list(value) if isinstance(value, (list, tuple)) else [value]
            items = value
        elif self.type in {"int", "float"}:
            ok = isinstance(value, int if self.type == "int" else numbers) and not isinstance(value, bool)
            if not ok or (self.type == "float" and not math.isfinite(value)):
                raise bad(f"must be {'an int' if self.type == 'int' else 'a number'}")
            value = float(value) if self.type == "float" else value
            items = [value]
        elif self.type == "bool" and not isinstance(value, bool):
            raise bad("must be True or False")
        elif self.type == "str" and not isinstance(value, str):
            raise bad("must be a string")
        if self.range is not None:
            lo, hi = self.range
            for v in items:
                if not isinstance(v, numbers) or isinstance(v, bool) or not lo <= v <= hi:
                    raise bad(f"is out of range [{lo}, {hi}]")
        return value


def _load_yaml() -> dict[str, Any]:
    import yaml

    return yaml.safe_load(DEFAULT_CFG_PATH.read_text(encoding="utf-8")) or {}


@cache
def load_args() -> dict[str, Arg]:
    """Read dydet's own arguments from `default.yaml`.

    Returns:
        (dict[str, Arg]): Arguments by name, in file order.
    """
    entries = {k: v for k, v in _load_yaml().items() if k not in {MODE_DEFAULTS_KEY, LIMITS_KEY}}
    args = {}
    for name, e in entries.items():
        if e.get("type") not in (None, *TYPES):
            raise ValueError(f"{DEFAULT_CFG_PATH}: {name} has unknown type {e['type']!r} (one of {', '.join(TYPES)})")
        args[name] = Arg(
            name=name,
            default=e.get("default"),
            help=e.get("help", ""),
            modes=tuple(e["modes"]),
            type=e.get("type"),
            choices=tuple(e["choices"]) if "choices" in e else None,
            range=tuple(e["range"]) if "range" in e else None,
        )
    return args


@cache
def _mode_defaults() -> dict[str, dict[str, Any]]:
    return {mode: dict(d) for mode, d in (_load_yaml().get(MODE_DEFAULTS_KEY) or {}).items()}


def arg_names() -> tuple[str, ...]:
    """Return the names of dydet's own arguments, which are never passed on to Ultralytics."""
    return tuple(load_args())


def defaults(mode: str | None = None) -> dict[str, Any]:
    """Return dydet's own argument defaults, optionally only those of one mode.

    Args:
        mode (str | None): A mode such as 'train'; None for all arguments.

    Returns:
        (dict[str, Any]): Default value by argument name (lists are fresh copies).
    """
    return {k: _copy(a.default) for k, a in load_args().items() if mode is None or mode in a.modes}


def default(name: str) -> Any:
    """Return the default of one of dydet's own arguments, e.g. ``default("hard_ratios")``."""
    return _copy(load_args()[name].default)


def mode_defaults(mode: str) -> dict[str, Any]:
    """Return the Ultralytics arguments whose default dydet sets differently in `mode` (e.g. benchmark imgsz)."""
    return {k: _copy(v) for k, v in _mode_defaults().get(mode, {}).items()}


def check_value(name: str, value: Any) -> Any:
    """Check one value of dydet argument `name` against `default.yaml` (`Arg.check`) and return it normalized.

    For values that do not come in as arguments of a mode, e.g. the score cut of ``model.routed(x, 0.4)``
    (`dydet.routing.RoutingSpec.at`); a mode's arguments go through `check_args` instead.

    Raises:
        ArgumentError: For a value of the wrong type, not one of the choices or out of range.
    """
    return load_args()[name].check(value)


def _check_ultralytics_values(kwargs: dict[str, Any]) -> None:
    """Run Ultralytics' own type/range check on its arguments now, so a bad value fails before any work starts."""
    from ultralytics.cfg import check_cfg

    ultra = {k: v for k, v in kwargs.items() if k not in load_args()}  # a copy: check_cfg converts in place
    try:
        check_cfg(ultra, hard=True)
    except (TypeError, ValueError) as e:
        raise UsageError(" ".join(str(e).split())) from None


def check_args(mode: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Check and complete the arguments of one mode: the one place where argument values are checked.

    dydet's own arguments are checked (`Arg.check`) and normalized; those of `mode` that are missing (or None) are
    filled in with their defaults, and so are the Ultralytics arguments that `default.yaml` gives a mode default
    (`mode_defaults`). A dydet argument of another mode is refused. Ultralytics' arguments get Ultralytics' own type
    and range check (`ultralytics.cfg.check_cfg`), now rather than when its trainer or predictor is built. A relative
    `project` is made absolute here, once.

    Args:
        mode (str): 'train', 'val', 'predict', 'export', 'benchmark' or 'tune'.
        kwargs (dict[str, Any]): The caller's arguments (not modified).

    Returns:
        (dict[str, Any]): A new dict of the arguments to run with.

    Raises:
        UsageError: For a bad value, or a dydet argument that does not apply to `mode` (the ``dydet`` command's exit
            code 2).
    """
    args = load_args()
    out = {**mode_defaults(mode), **{k: v for k, v in kwargs.items() if not (k in mode_defaults(mode) and v is None)}}
    for key, value in kwargs.items():
        arg = args.get(key)
        if arg is None:
            continue
        if mode not in arg.modes:
            raise UsageError(f"'{key}' does not apply to '{mode}' (only to: {', '.join(arg.modes)})")
        try:
            out[key] = _copy(arg.default) if value is None and arg.default is not None else arg.check(value)
        except ArgumentError as e:
            raise UsageError(str(e)) from None
    _check_ultralytics_values(out)
    if out.get("project"):
        out["project"] = str(Path(out["project"]).resolve())
    for key, value in defaults(mode).items():
        out.setdefault(key, value)
    return out


@cache
def max_imgsz() -> int:
    """Return the largest image side dydet accepts (`limits: imgsz` in `default.yaml`)."""
    return int((_load_yaml().get(LIMITS_KEY) or {})["imgsz"])


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


__all__ = (
    "CFG_DIR",
    "DATASETS_DIR",
    "DEFAULT_CFG_PATH",
    "MODELS_DIR",
    "Arg",
    "arg_names",
    "check_args",
    "check_value",
    "default",
    "defaults",
    "load_args",
    "max_imgsz",
    "mode_defaults",
)
