"""Heterogeneous Dy models: the hard route at a larger scale than the easy route, e.g. dy-yolo11n-s.

`dy-yolo11n-s.yaml` is `dy-yolo11.yaml` with the easy route (B1 + H1) at scale n and the hard route (B2 + H2) at
scale s: the easy route is exactly yolo11n, the hard route a full yolo11s (its own stem included) fed by B1 through
composite connections whose CBLinear convs map B1's n widths to B2's s widths. The model dict records it as
`scale: n` plus `hard_scale: s`.

The dual graph has the same layers and wiring at any scale, so it is parsed twice: B1 + H1 at the easy scale, and the
hard part (taps, B2 with CBFuse, H2) at the hard scale (its B1 + H1 rows replaced by identities, never built). The two
are spliced by layer index, and each tap is rebuilt to read B1's (easy-scale) width. The taps start at zero, so that
B2 first sees only the image and the hard route can reproduce a static model of its scale.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn
from ultralytics.nn.modules import CBLinear
from ultralytics.utils import LOGGER

from dydet.utils.errors import ConfigError

SCALES = "nsmlx"  # Ultralytics' scales, smallest first
_PAIR = re.compile(r"\d+([nslmx])-([nslmx])$")


def scale_pair(stem: str) -> tuple[str, str] | None:
    """Return the (easy, hard) scales a model name asks for, e.g. 'dy-yolo11n-s' -> ('n', 's'), or None."""
    m = _PAIR.search(stem)
    return (m.group(1), m.group(2)) if m else None


def check_pair(name: str, easy: str, hard: str, scales: dict[str, Any] | None) -> None:
    """Refuse a scale pair that is not (smaller, larger) scales the YAML defines, naming the fix in one line."""
    base = name[: -len(f"{easy}-{hard}")]
    if not scales:
        raise ConfigError(f"{name}: this model has no scales to pair; drop the '-{hard}' from its name")
    missing = [s for s in (easy, hard) if s not in scales]
    if missing:
        raise ConfigError(f"{name}: the YAML has no scale '{missing[0]}'; it defines {', '.join(scales)}")
    if SCALES.index(hard) < SCALES.index(easy):
        raise ConfigError(
            f"{name}: the hard route must be the larger scale; use {base}{hard}-{easy}.yaml (easy route {hard}, "
            f"hard route {easy})"
        )
    if hard == easy:
        raise ConfigError(f"{name}: both routes at scale '{easy}' is the homogeneous model; use {base}{easy}.yaml")


def is_hetero(d: dict[str, Any]) -> bool:
    """Return whether a model dict has its hard route at another scale than its easy route."""
    return bool(d.get("hard_scale")) and d.get("hard_scale") != d.get("scale")


def parse_hetero(d: dict[str, Any], ch: int, verbose: bool = True) -> tuple[nn.Sequential, list[int], Any]:
    """Build the layers of a heterogeneous Dy model: B1 + H1 at `scale`, the hard part at `hard_scale`.

    Args:
        d (dict): The dydet model dict, with `scale` and `hard_scale`.
        ch (int): Input channels.
        verbose (bool): Log the scales and the composite connections.

    Returns:
        (tuple[nn.Sequential, list[int], DualGraph]): The layers, the sorted indices of layers whose outputs later
            layers read, and the graph's index ranges.
    """
    from dydet.nn.builder import build_dual_graph
    from dydet.nn.parse import output_channels, parse_model

    easy_d, hard_d = {**d, "scale": d["scale"]}, {**d, "scale": d["hard_scale"]}
    easy_x, graph = build_dual_graph(easy_d)
    hard_x, hard_graph = build_dual_graph(hard_d)
    if hard_graph != graph:
        raise ConfigError(f"{d.get('yaml_file')}: the dual graph differs between scales; cannot build a scale pair")
    start = graph.hard.start
    easy_layers, easy_save = parse_model({**easy_x, "backbone": easy_x["backbone"][:start]}, ch=ch, verbose=False)
    placeholder = [[-1, 1, "nn.Identity", []] for _ in range(start)]  # B1 + H1 at the hard scale: never built
    hard_layers, hard_save = parse_model({**hard_x, "backbone": placeholder + hard_x["backbone"][start:]}, ch, False)
    layers = [*easy_layers, *list(hard_layers)[start:]]
    b1_widths = [ch, *output_channels(easy_d, ch)]  # by B1 layer index (layer 0 is the input identity)
    for t in graph.taps:
        old = layers[t]
        tap = CBLinear(b1_widths[old.f], list(old.c2s))
        with torch.no_grad():
            tap.conv.weight.zero_()
            tap.conv.bias.zero_()
        tap.i, tap.f, tap.type = old.i, old.f, old.type
        tap.np = sum(p.numel() for p in tap.parameters())
        layers[t] = tap
    if verbose:
        links = ", ".join(f"{b1_widths[layers[t].f]}->{list(layers[t].c2s)}" for t in graph.taps)
        LOGGER.info(
            f"{d.get('yaml_file', 'dy-model')}: easy route (B1 + H1) at scale '{d['scale']}', hard route (B2 + H2) at "
            f"scale '{d['hard_scale']}'; composite connections (zero at start) {links}"
        )
    return nn.Sequential(*layers), sorted(set(easy_save) | set(hard_save)), graph
