"""Turn a dydet model YAML (an Ultralytics detection YAML plus a `dynamic:` section) into the dual-route graph.

The expanded layer list, in this order, is what `ultralytics.nn.tasks.parse_model` builds:

    0               nn.Identity                 the input image, so that B2 can re-read it
    1 .. nb         B1: the base backbone
    ..              H1: the base head on B1 (easy route, ends in Detect)
    ..              CBLinear taps, one per B1 level (emit one chunk per B2 level <= their own level)
    ..              B2: the base backbone again, with a CBFuse after each level's fuse point that sums the
                    nearest-resized chunks of every B1 level >= its own ("dense higher-level composition")
    .. end          H2: a separate copy of the head on B2 (hard route, ends in Detect, so it is `model[-1]`)

Each part is a contiguous range of layer indices, recorded in a `DualGraph`, which is what the model executes per route.

The YAML's `dynamic:` section names the wiring in base-backbone layer indices. `stages` (the stage outputs) is the
YOLO11 convention: taps = router inputs = stage outputs, and level k fuses right after stage k's first layer. Models
where that does not hold (YOLOv7: fuse points that are Concats, W6: six router inputs but five taps) list them
explicitly with `taps`, `router` and `fuse_after`; each defaults to what `stages` implies. Chunk widths are the output
widths of the fuse-point layers, found by channel tracking (`dydet.nn.parse.output_channels`).
"""

from __future__ import annotations

import re
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ultralytics.utils import YAML

from dydet.cfg import MODELS_DIR
from dydet.nn.hetero import check_pair, scale_pair
from dydet.utils.errors import ArgumentError, ConfigError, MissingFileError


@dataclass(frozen=True)
class DualGraph:
    """Index ranges of each part of an expanded dual-route layer list (Python `range`s over `model.model`).

    Attributes:
        b1 (range): Input identity and backbone 1, run on every image.
        easy (range): H1, the easy route's neck and Detect head.
        hard (range): CBLinear taps, backbone 2 with CBFuse, and H2; the hard route after B1.
        stages (tuple[int, ...]): Layer indices of the B1 outputs the router reads (its inputs).
        copies (tuple[tuple[int, int, int], ...]): For every layer of the base YAML, (base index, its copy on the
            easy side (B1/H1), its copy on the hard side (B2/H2)); used to initialise both routes from one model.
        taps (tuple[int, ...]): Layer indices of the CBLinear composite connections, one per level.
        fuses (tuple[int, ...]): Layer indices of B2's CBFuse layers, one per level.
    """

    b1: range
    easy: range
    hard: range
    stages: tuple[int, ...]
    copies: tuple[tuple[int, int, int], ...] = ()
    taps: tuple[int, ...] = ()
    fuses: tuple[int, ...] = ()

    def after_b1(self, route: str) -> range:
        """Return the layers one route ('easy' or 'hard') runs after B1: `easy` or `hard`."""
        if route not in ("easy", "hard"):
            raise ArgumentError(f"route={route!r} is invalid: use 'easy' or 'hard'")
        return self.easy if route == "easy" else self.hard


# How a scaled model name reads, per family: `base` is the stem of the shipped YAML, `scale` the scale it asks for.
# The YOLO families' letters (dy-yolo11n, and dy-yolo11n-s for a scale pair); other families add theirs with
# `register_scaled_name` (R-CNN: dy-faster-rcnn-r50).
SCALED_NAMES: list[re.Pattern] = [re.compile(r"^(?P<base>.*\d+)(?P<scale>[nslmx])(?:-[nslmx])?$")]


def register_scaled_name(pattern: str) -> None:
    """Teach `resolve_model_yaml` a family's scaled names: a regex on the file stem with groups `base` and `scale`."""
    compiled = re.compile(pattern)
    if compiled.pattern not in {p.pattern for p in SCALED_NAMES}:
        SCALED_NAMES.append(compiled)


def scaled_name(cfg: str | Path) -> re.Match | None:
    """Return the match of a model name against the families' scaled-name patterns (groups `base`, `scale`)."""
    stem = Path(cfg).stem
    return next((m for p in SCALED_NAMES if (m := p.match(stem))), None)


def resolve_model_yaml(cfg: str | Path) -> Path:
    """Find a model YAML of any family by path or by scaled name: the one resolver of model names.

    `dy-yolo11n.yaml` resolves to the shipped `dydet/cfg/models/dy-yolo11.yaml`, `dy-faster-rcnn-r50.yaml` to
    `dy-faster-rcnn.yaml`, as Ultralytics resolves `yolo11n.yaml` to `yolo11.yaml` (the scale is read from the name by
    the caller, `scaled_name`).

    Args:
        cfg (str | Path): A YAML path, or the name of a shipped model with or without its scale.

    Returns:
        (Path): The YAML file to read.

    Raises:
        FileNotFoundError: If neither the path nor a shipped model of that name exists.
    """
    path = Path(cfg)
    if path.is_file():
        return path
    m = scaled_name(path)
    candidates = [MODELS_DIR / path.name] + ([MODELS_DIR / f"{m['base']}{path.suffix or '.yaml'}"] if m else [])
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    shipped = ", ".join(sorted(p.name for p in MODELS_DIR.glob("*.yaml")))
    raise MissingFileError(
        f"dydet model YAML '{cfg}' not found; pass a file path or one of: {shipped} (with a scale, e.g. "
        "dy-yolo11n.yaml or dy-faster-rcnn-r50.yaml)"
    )


def guess_scale(cfg: str | Path) -> str | None:
    """Return the scale letter in a model name such as `dy-yolo11s.yaml` (`dy-yolo11n-s.yaml`: the easy route's, n)."""
    m = re.search(r"\d+([nslmx])(-[nslmx])?$", Path(cfg).stem)
    return m.group(1) if m else None


def load_model_yaml(cfg: str | Path, dynamic: bool = True) -> dict[str, Any]:
    """Load a dydet model YAML into a dict, recording its scale and file like `ultralytics` does.

    Args:
        cfg (str | Path): A YAML path or a shipped model name, e.g. `dy-yolo11n.yaml` or `yolov7.yaml`.
        dynamic (bool): Require a `dynamic:` section (a dydet dynamic model) rather than a static model YAML.

    Returns:
        (dict): The model dictionary with `scale` (None for a YAML without `scales`) and `yaml_file` set.

    Raises:
        ValueError: If a dynamic YAML has no `dynamic:` section or the name asks for a scale the YAML does not define.
    """
    path = resolve_model_yaml(cfg)
    d = YAML.load(path)
    if dynamic and "dynamic" not in d:
        dy = MODELS_DIR / f"dy-{path.name}"
        dy = dy if dy.is_file() else None
        raise ConfigError(
            f"{path} is not a dydet model YAML: it has no 'dynamic:' section (see cfg/models/*.yaml)"
            + (f"; it is the static model of {dy.name} (train that one, or this with dydet.StaticYOLO)" if dy else "")
        )
    scale = guess_scale(cfg) if d.get("scales") else None  # 'yolov7x' names a model, not a scale of yolov7
    if scale and scale not in d["scales"]:
        raise ConfigError(f"{path} has no scale '{scale}'; it defines {', '.join(d['scales'])}")
    d["scale"] = scale
    pair = scale_pair(Path(cfg).stem)  # dy-yolo11n-s: the hard route at scale s (dydet.nn.hetero)
    if pair:
        check_pair(Path(cfg).stem, *pair, d.get("scales") if dynamic else None)
        d["hard_scale"] = pair[1]
    d["yaml_file"] = str(Path(cfg).name if not Path(cfg).is_file() else cfg)
    return d


def _remap(f: int | list[int], ref: dict[int, int], j: int) -> int | list[int]:
    """Map the `from` of base layer `j` into the expanded graph through `ref` (base index -> expanded index).

    -1 stays relative (the previous expanded layer, e.g. a CBFuse inserted after layer j-1), unless `ref` maps it;
    other relative indices (-2, -3, ...) become absolute first, so that inserted CBFuse layers cannot shift them.
    """
    if isinstance(f, int):
        if f == -1:
            return ref.get(-1, -1)
        return ref[j + f] if f < 0 else ref.get(f, f)
    return [_remap(x, ref, j) for x in f]


def _validate_layers(key: str, layers: Any, nb: int) -> list[int]:
    if not isinstance(layers, list) or not layers or any(type(s) is not int for s in layers):
        raise ConfigError(f"dynamic.{key} must be a non-empty list of backbone layer indices, got {layers}")
    if sorted(set(layers)) != list(layers) or layers[0] < 0 or layers[-1] >= nb:
        raise ConfigError(f"dynamic.{key} must be strictly increasing indices in [0, {nb - 1}], got {layers}")
    return list(layers)


def dynamic_wiring(dynamic: dict[str, Any], nb: int) -> tuple[list[int], list[int], list[int]]:
    """Return the (router inputs, CBLinear taps, fuse points) of a YAML's `dynamic:` section, in base layer indices.

    Args:
        dynamic (dict): The `dynamic:` section: `stages`, or `taps` + `fuse_after` (+ `router`), each overriding what
            `stages` implies.
        nb (int): Number of backbone layers.

    Returns:
        (tuple[list[int], list[int], list[int]]): Router inputs, taps (one per level) and fuse points (one per level).

    Raises:
        ValueError: If a list is missing, not strictly increasing backbone indices, or taps and fuse points differ in
            number.
    """
    stages = dynamic.get("stages")
    if stages is not None:
        stages = _validate_layers("stages", stages, nb)
    elif "taps" not in dynamic or "fuse_after" not in dynamic:
        raise ConfigError("the dynamic: section needs 'stages', or explicit 'taps' and 'fuse_after' lists")
    taps = _validate_layers("taps", dynamic.get("taps", stages), nb)
    fuse_after = dynamic.get("fuse_after") or [0] + [s + 1 for s in stages[:-1]]  # each stage's first layer
    fuse_after = _validate_layers("fuse_after", fuse_after, nb)
    router = _validate_layers("router", dynamic.get("router", taps), nb)
    if len(taps) != len(fuse_after):
        raise ConfigError(
            f"dynamic.taps ({len(taps)}) and dynamic.fuse_after ({len(fuse_after)}) must name one layer per level"
        )
    return router, taps, fuse_after


def build_dual_graph(d: dict[str, Any]) -> tuple[dict[str, Any], DualGraph]:
    """Expand a dydet model dict into the layer dict `parse_model` builds, and the index ranges of each part.

    Args:
        d (dict): A dydet model dictionary (`backbone`, `head`, `dynamic`, `nc`, `scales`, `scale`).

    Returns:
        (tuple[dict, DualGraph]): The expanded model dict (all layers under `backbone`) and its `DualGraph`.
    """
    from dydet.nn.parse import output_channels

    backbone, head = d["backbone"], d["head"]
    nb, nh = len(backbone), len(head)
    router, taps, fuse_after = dynamic_wiring(d["dynamic"], nb)
    nl = len(taps)
    widths = output_channels(d, d.get("channels", 3))
    level_widths = [widths[j] for j in fuse_after]  # B2 width at each level, where the CBFuse adds in

    layers: list[list] = [[-1, 1, "nn.Identity", []]]
    b1_ref = {j: 1 + j for j in range(nb)}

    def head_copy(first: int, backbone_ref: dict[int, int]) -> list[list]:
        ref = {**backbone_ref, **{nb + j: first + j for j in range(nh)}}
        return [[_remap(f, ref, nb + j), n, m, deepcopy(a)] for j, (f, n, m, a) in enumerate(head)]

    layers += [[_remap(f, b1_ref, j), n, m, deepcopy(a)] for j, (f, n, m, a) in enumerate(backbone)]
    easy_start = len(layers)
    layers += head_copy(easy_start, b1_ref)

    hard_start = len(layers)
    tap_layers = [hard_start + level for level in range(nl)]
    layers += [[b1_ref[s], 1, "CBLinear", [level_widths[: level + 1]]] for level, s in enumerate(taps)]

    b2_ref: dict[int, int] = {-1: 0}  # B2's first layer re-reads the input image (layer 0)
    b2_layers, fuses = [], []
    for j, (f, n, m, a) in enumerate(backbone):
        layers.append([_remap(f, b2_ref, j), n, m, deepcopy(a)])
        b2_ref.pop(-1, None)
        b2_ref[j] = len(layers) - 1
        b2_layers.append(b2_ref[j])
        if j in fuse_after:
            level = fuse_after.index(j)
            layers.append([[*tap_layers[level:], -1], 1, "CBFuse", [[level] * (nl - level)]])
            b2_ref[j] = len(layers) - 1
            fuses.append(b2_ref[j])
    hard_head_start = len(layers)
    layers += head_copy(hard_head_start, b2_ref)

    expanded = {k: v for k, v in d.items() if k not in {"backbone", "head", "dynamic"}}
    expanded.update(backbone=layers, head=[])
    graph = DualGraph(
        b1=range(0, easy_start),
        easy=range(easy_start, hard_start),
        hard=range(hard_start, len(layers)),
        stages=tuple(b1_ref[s] for s in router),
        copies=tuple((j, b1_ref[j], b2_layers[j]) for j in range(nb))
        + tuple((nb + j, easy_start + j, hard_head_start + j) for j in range(nh)),
        taps=tuple(tap_layers),
        fuses=tuple(fuses),
    )
    return expanded, graph
