"""Turn a dydet model YAML (an Ultralytics detection YAML plus a `dynamic:` section) into the dual-route graph.

The expanded layer list, in this order, is what `ultralytics.nn.tasks.parse_model` builds:

    0               nn.Identity                 the input image, so that B2 can re-read it
    1 .. nb         B1: the base backbone
    ..              H1: the base head on B1 (easy route, ends in Detect)
    ..              CBLinear taps, one per B1 stage output (emit one chunk per B2 level <= their own level)
    ..              B2: the base backbone again, with a CBFuse after each stage's first (downsampling) layer that sums
                    the nearest-resized chunks of every B1 level >= its own ("dense higher-level composition")
    .. end          H2: a separate copy of the head on B2 (hard route, ends in Detect, so it is `model[-1]`)

Each part is a contiguous range of layer indices, recorded in a `DualGraph`, which is what the model executes per route.
"""

from __future__ import annotations

import re
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ultralytics.utils import YAML
from ultralytics.utils.ops import make_divisible

from dydet.cfg import MODELS_DIR
from dydet.utils.errors import ArgumentError, ConfigError, MissingFileError

# Layers whose first argument is an output width that `parse_model` scales by the model's width multiple.
_NON_WIDTH_MODULES = {"Concat", "CBFuse", "CBLinear", "Detect"}


@dataclass(frozen=True)
class DualGraph:
    """Index ranges of each part of an expanded dual-route layer list (Python `range`s over `model.model`).

    Attributes:
        b1 (range): Input identity and backbone 1, run on every image.
        easy (range): H1, the easy route's neck and Detect head.
        hard (range): CBLinear taps, backbone 2 with CBFuse, and H2; the hard route after B1.
        stages (tuple[int, ...]): Layer indices of B1's stage outputs (router inputs).
        copies (tuple[tuple[int, int, int], ...]): For every layer of the base YAML, (base index, its copy on the
            easy side (B1/H1), its copy on the hard side (B2/H2)); used to initialise both routes from one model.
    """

    b1: range
    easy: range
    hard: range
    stages: tuple[int, ...]
    copies: tuple[tuple[int, int, int], ...] = ()

    def after_b1(self, route: str) -> range:
        """Return the layers one route ('easy' or 'hard') runs after B1: `easy` or `hard`."""
        if route not in ("easy", "hard"):
            raise ArgumentError(f"route={route!r} is invalid: use 'easy' or 'hard'")
        return self.easy if route == "easy" else self.hard


def resolve_model_yaml(cfg: str | Path) -> Path:
    """Find a dydet model YAML by path or by scaled name, e.g. `dy-yolo11n.yaml` -> `dydet/cfg/models/dy-yolo11.yaml`.

    Args:
        cfg (str | Path): A YAML path, or the name of a shipped model with or without its scale letter.

    Returns:
        (Path): The YAML file to read.

    Raises:
        FileNotFoundError: If neither the path nor a shipped model of that name exists.
    """
    path = Path(cfg)
    if path.is_file():
        return path
    unscaled = re.sub(r"(\d+)([nslmx])(\.yaml)?$", r"\1", path.stem) + ".yaml"
    for candidate in (MODELS_DIR / path.name, MODELS_DIR / unscaled):
        if candidate.is_file():
            return candidate
    shipped = ", ".join(sorted(p.name for p in MODELS_DIR.glob("*.yaml")))
    raise MissingFileError(f"dydet model YAML '{cfg}' not found; pass a file path or one of: {shipped} (+ n/s/m/l/x)")


def guess_scale(cfg: str | Path) -> str | None:
    """Return the scale letter in a model name such as `dy-yolo11s.yaml`, or None."""
    m = re.search(r"\d+([nslmx])$", Path(cfg).stem)
    return m.group(1) if m else None


def load_model_yaml(cfg: str | Path) -> dict[str, Any]:
    """Load a dydet model YAML into a dict, recording its scale and file like `ultralytics` does.

    Args:
        cfg (str | Path): A YAML path or a shipped model name, e.g. `dy-yolo11n.yaml`.

    Returns:
        (dict): The model dictionary with `scale` and `yaml_file` set.

    Raises:
        ValueError: If the YAML has no `dynamic:` section or names a scale it does not define.
    """
    path = resolve_model_yaml(cfg)
    d = YAML.load(path)
    if "dynamic" not in d:
        raise ConfigError(f"{path} is not a dydet model YAML: it has no 'dynamic:' section (see cfg/models/*.yaml)")
    scale = guess_scale(cfg)
    if scale and d.get("scales") and scale not in d["scales"]:
        raise ConfigError(f"{path} has no scale '{scale}'; it defines {', '.join(d['scales'])}")
    d["scale"] = scale
    d["yaml_file"] = str(Path(cfg).name if not Path(cfg).is_file() else cfg)
    return d


def _width(d: dict[str, Any], layer: list) -> int:
    """Return the output width `parse_model` gives a layer whose first argument is a width."""
    _, _, module, args = layer
    if module in _NON_WIDTH_MODULES or module.startswith("nn.") or not args or not isinstance(args[0], int):
        raise ConfigError(f"a dynamic stage must start with a layer that has an output width, got {module}{args}")
    width, max_channels = 1.0, float("inf")
    if d.get("scales"):
        scale = d.get("scale") or next(iter(d["scales"]))
        _, width, max_channels = d["scales"][scale]
    else:
        width = d.get("width_multiple", 1.0)
    return make_divisible(min(args[0], max_channels) * width, 8)


def _remap(f: int | list[int], ref: dict[int, int]) -> int | list[int]:
    """Map a layer's `from` (relative -1 or absolute base indices) into the expanded graph through `ref`."""
    if isinstance(f, int):
        return ref.get(f, f) if f != -1 else ref.get(-1, -1)
    return [_remap(x, ref) for x in f]


def _validate_stages(stages: list[int], nb: int) -> None:
    if not stages or any(not isinstance(s, int) for s in stages):
        raise ConfigError(f"dynamic.stages must be a non-empty list of backbone layer indices, got {stages}")
    if sorted(set(stages)) != list(stages) or stages[0] < 0 or stages[-1] >= nb:
        raise ConfigError(f"dynamic.stages must be strictly increasing indices in [0, {nb - 1}], got {stages}")


def build_dual_graph(d: dict[str, Any]) -> tuple[dict[str, Any], DualGraph]:
    """Expand a dydet model dict into the layer dict `parse_model` builds, and the index ranges of each part.

    Args:
        d (dict): A dydet model dictionary (`backbone`, `head`, `dynamic`, `nc`, `scales`, `scale`).

    Returns:
        (tuple[dict, DualGraph]): The expanded model dict (all layers under `backbone`) and its `DualGraph`.
    """
    backbone, head, stages = d["backbone"], d["head"], list(d["dynamic"]["stages"])
    nb, nh, nl = len(backbone), len(head), len(stages)
    _validate_stages(stages, nb)
    starts = [0] + [s + 1 for s in stages[:-1]]  # first (downsampling) layer of each stage
    level_widths = [_width(d, backbone[j]) for j in starts]  # B2 width at each level, where the CBFuse adds in

    layers: list[list] = [[-1, 1, "nn.Identity", []]]
    b1_ref = {j: 1 + j for j in range(nb)}

    def head_copy(first: int, backbone_ref: dict[int, int]) -> list[list]:
        ref = {**backbone_ref, **{nb + j: first + j for j in range(nh)}}
        return [[_remap(f, ref), n, m, deepcopy(a)] for f, n, m, a in head]

    layers += [[_remap(f, b1_ref), n, m, deepcopy(a)] for f, n, m, a in backbone]
    easy_start = len(layers)
    layers += head_copy(easy_start, b1_ref)

    hard_start = len(layers)
    taps = [hard_start + level for level in range(nl)]
    layers += [[b1_ref[s], 1, "CBLinear", [level_widths[: level + 1]]] for level, s in enumerate(stages)]

    b2_ref: dict[int, int] = {-1: 0}  # B2's first layer re-reads the input image (layer 0)
    b2_layers = []
    for j, (f, n, m, a) in enumerate(backbone):
        layers.append([_remap(f, b2_ref), n, m, deepcopy(a)])
        b2_ref.pop(-1, None)
        b2_ref[j] = len(layers) - 1
        b2_layers.append(b2_ref[j])
        if j in starts:
            level = starts.index(j)
            layers.append([[*taps[level:], -1], 1, "CBFuse", [[level] * (nl - level)]])
            b2_ref[j] = len(layers) - 1
    hard_head_start = len(layers)
    layers += head_copy(hard_head_start, b2_ref)

    expanded = {k: v for k, v in d.items() if k not in {"backbone", "head", "dynamic"}}
    expanded.update(backbone=layers, head=[])
    graph = DualGraph(
        b1=range(0, easy_start),
        easy=range(easy_start, hard_start),
        hard=range(hard_start, len(layers)),
        stages=tuple(b1_ref[s] for s in stages),
        copies=tuple((j, b1_ref[j], b2_layers[j]) for j in range(nb))
        + tuple((nb + j, easy_start + j, hard_head_start + j) for j in range(nh)),
    )
    return expanded, graph
