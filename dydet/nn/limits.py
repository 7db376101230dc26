"""Caps on the size of a model a YAML (or a checkpoint's stored YAML) may ask for, checked before anything is built.

A model dict is input: `repeats` of 10^6 or a width multiplied by 1000 would run for minutes and then exhaust memory.
dydet's own models stay far below these caps (at most 6 repeats, 1280 channels, width multiple 1.5, 122 layers).
"""

from __future__ import annotations

from typing import Any

from dydet.utils.errors import ConfigError

MAX_LAYERS = 2000
MAX_REPEATS = 100  # a layer's repeats after the depth multiple
MAX_WIDTH = 16384  # any integer layer argument (channels, ...) after the width multiple
MAX_MULTIPLE = 8.0  # depth and width multiples
MAX_PARAMETERS = 1_000_000_000  # weights a checkpoint may hold


def check_parameters(state: dict[str, Any], source: Any) -> None:
    """Raise a one-line `ConfigError` when a state dict holds more than `MAX_PARAMETERS` numbers."""
    total = sum(v.numel() for v in state.values() if hasattr(v, "numel"))
    if total > MAX_PARAMETERS:
        raise ConfigError(f"{source} holds {total:,} weights, more than the limit of {MAX_PARAMETERS:,}")


def check_model_size(d: dict[str, Any], source: Any = "model YAML") -> None:
    """Raise a one-line `ConfigError` when a model dict asks for more layers, repeats or width than the caps allow.

    Args:
        d (dict): The model dict (`backbone`, `head`, optional `scales`, `depth_multiple`, `width_multiple`).
        source (Any): Where it came from, for the message.
    """

    def refuse(what: str) -> ConfigError:
        return ConfigError(f"{source} asks for a model too large to build ({what}): check the YAML's numbers")

    multiples = [d.get("depth_multiple", 1.0), d.get("width_multiple", 1.0)]
    scales = d.get("scales") if isinstance(d.get("scales"), dict) else {}
    for row in scales.values():
        multiples += list(row[:2]) if isinstance(row, (list, tuple)) else []
    depth = width = 1.0
    for m in multiples:
        if not isinstance(m, (int, float)) or not 0 < m <= MAX_MULTIPLE:
            raise refuse(f"depth/width multiple {m!r}, the limit is {MAX_MULTIPLE:g}")
        depth, width = max(depth, m), max(width, m)
    rows = [*(d.get("backbone") or []), *(d.get("head") or [])]
    if len(rows) > MAX_LAYERS:
        raise refuse(f"{len(rows)} layers, the limit is {MAX_LAYERS}")
    for i, row in enumerate(rows):
        if not isinstance(row, (list, tuple)) or len(row) != 4:
            continue  # the builder reports malformed rows
        n, args = row[1], row[3]
        if isinstance(n, (int, float)) and n * (depth if n > 1 else 1) > MAX_REPEATS:
            raise refuse(f"layer {i} repeated {n} times, the limit is {MAX_REPEATS}")
        for a in args if isinstance(args, (list, tuple)) else ():
            if isinstance(a, (int, float)) and not isinstance(a, bool) and abs(a) * width > MAX_WIDTH:
                raise refuse(f"layer {i} argument {a} (x{width:g}), the limit is {MAX_WIDTH}")
