"""Build a layer list from a model dict: Ultralytics' `parse_model`, extended for YOLOv7-family layers.

Ultralytics' `parse_model` finds classes in its own module namespace and knows output widths only for its own set of
modules, so it cannot build `SPPCSPC` or `ReOrg` and records the wrong width for `RepConv`. It also sets
`Detect.legacy` *on the class* from the layers it sees (legacy unless C3k2/A2C2f/C2fCIB appear).

`parse_model` here keeps Ultralytics' behaviour exactly for every other YAML (it calls Ultralytics' parser), and builds
YOLOv7-family YAMLs (`family: yolov7`, or any YAML naming one of its layers) itself, from an explicit table of layers
and their channel rules, with the YOLO11-style (non-legacy) `Detect` head. Either way `Detect.legacy` on the class is
left as it was, and every built `Detect` records the style it was built with as an instance attribute.
"""

from __future__ import annotations

import ast
import re
import urllib.parse
from copy import deepcopy
from pathlib import Path
from typing import Any

import torch
from torch import nn
from ultralytics.nn import tasks as ul_tasks
from ultralytics.nn.modules import CBFuse, CBLinear, Concat, Conv, Detect, RepConv
from ultralytics.utils import LOGGER
from ultralytics.utils.ops import make_divisible

from dydet.nn.limits import check_model_size
from dydet.nn.modules import SPPCSPC, ReOrg
from dydet.utils.errors import ConfigError

FAMILIES = ("yolov7",)  # values of a YAML's `family:` that dydet's parser builds
# Layers only dydet's parser builds; a YAML naming any of them is built entirely here.
DYDET_LAYERS: dict[str, type[nn.Module]] = {"SPPCSPC": SPPCSPC, "ReOrg": ReOrg, "RepConv": RepConv}
# Every layer dydet's parser can build (besides any `nn.*` layer), by YAML name.
_LAYERS: dict[str, type[nn.Module]] = {
    **DYDET_LAYERS,
    "Conv": Conv,
    "Concat": Concat,
    "CBLinear": CBLinear,
    "CBFuse": CBFuse,
    "Detect": Detect,
}
_WIDTH_FIRST = {Conv, RepConv, SPPCSPC}  # first argument is the output width, scaled by the model's width multiple
_ACTIVATION = re.compile(r"^nn\.(\w+)\(([^()]*)\)$")


def needs_dydet_parser(d: dict[str, Any]) -> bool:
    """Return True if dydet's parser builds a model dict: it is a YOLOv7-family YAML or names a layer such as SPPCSPC.

    YOLOv7-family YAMLs say `family: yolov7`; they get the YOLO11-style `Detect` head even where (as in YOLOv7-tiny)
    every layer is one Ultralytics knows, which would otherwise give them the legacy head.
    """
    return d.get("family") in FAMILIES or any(row[2] in DYDET_LAYERS for row in d["backbone"] + d["head"])


def parse_model(d: dict[str, Any], ch: int, verbose: bool = True) -> tuple[nn.Sequential, list[int]]:
    """Build the layers of a model dict, like `ultralytics.nn.tasks.parse_model`, for YOLOv7-family layers too.

    Args:
        d (dict): Model dictionary (`backbone`, `head`, `nc`, optional `scales`/`scale`, `activation`, ...).
        ch (int): Input channels.
        verbose (bool): Print the layer table.

    Returns:
        (tuple[nn.Sequential, list[int]]): The layers and the sorted indices of layers whose outputs later layers read.
    """
    check_buildable(d)
    legacy = Detect.legacy
    try:
        if needs_dydet_parser(d):
            model, save = _parse_yolov7_family(deepcopy(d), ch, verbose)
        else:
            model, save = ul_tasks.parse_model(deepcopy(d), ch=ch, verbose=verbose)
            for m in model:
                if isinstance(m, Detect):
                    m.legacy = Detect.legacy  # the style Ultralytics chose for this model, kept on the instance
    finally:
        Detect.legacy = legacy
    return model, save


def check_buildable(d: dict[str, Any], kind: str = "model YAML") -> None:
    """Refuse a model dict whose construction would exhaust memory or download weights, before anything is built.

    Args:
        d (dict): The model dict.
        kind (str): What it is, for the messages (e.g. "baseline YAML"); its `yaml_file` is named after it.
    """
    check_model_size(d)
    check_downloads(d, f"{kind} '{d['yaml_file']}'" if d.get("yaml_file") else kind)


def check_downloads(d: dict[str, Any], source: Any = "model YAML") -> None:
    """Refuse, before anything is built, a layer whose construction would download weights the user did not allow.

    A `TorchVision` layer with weights (its third argument; "DEFAULT" when left out) makes torchvision fetch them
    unless torch hub's cache holds the file already. dydet reaches the network only when the user opted in
    (``YOLO_OFFLINE=0``), so otherwise such a layer is refused in one line naming the file and where it goes.
    Without weights (None / False) the layer builds offline.

    Args:
        d (dict): The model dict.
        source (Any): Where it came from, for the message.
    """
    from dydet.utils.inputs import network_allowed

    rows = [*(d.get("backbone") or []), *(d.get("head") or [])]
    for i, row in enumerate(rows):
        if not (isinstance(row, (list, tuple)) and len(row) == 4 and row[2] == "TorchVision"):
            continue
        args = row[3] if isinstance(row[3], (list, tuple)) else []
        name, weights = (args[1] if len(args) > 1 else None), (args[2] if len(args) > 2 else "DEFAULT")
        if isinstance(weights, str):
            try:
                weights = ast.literal_eval(weights)  # as Ultralytics' parser reads it ('None', 'False')
            except (ValueError, SyntaxError):
                pass
        if not weights:
            continue
        url = torchvision_weights_url(name, weights, f"{source} layer {i}")
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urllib.parse.urlparse(url).path).name
        if not cached.is_file() and not network_allowed():
            raise ConfigError(
                f"{source} layer {i} TorchVision('{name}', weights={weights!r}) would download {url}: put that file "
                f"into {cached.parent}, set the layer's weights to None, or set YOLO_OFFLINE=0 to allow the download"
            )


def torchvision_weights_url(name: Any, weights: Any, where: str) -> str:
    """Return the URL torchvision fetches the weights `weights` of its model `name` from; bad names are one line."""
    from torchvision.models import get_model_weights

    try:
        return get_model_weights(name).verify(weights).url
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError(
            f"{where} TorchVision({name!r}, weights={weights!r}): torchvision has no such model or weights ({e})"
        ) from e


def output_channels(d: dict[str, Any], ch: int = 3) -> list[int]:
    """Return the output width of every backbone layer of a model dict, found by running the layers on shapes only.

    The layers are built on the `meta` device (no memory, no weights) and run on a meta tensor, so the widths are what
    the modules really produce, for any layer either parser can build.

    Args:
        d (dict): Model dictionary; only its `backbone` rows are used.
        ch (int): Input channels.

    Returns:
        (list[int]): Channels of each backbone layer's output, in order.
    """
    backbone_only = {**d, "head": []}
    with torch.device("meta"):
        layers, _ = parse_model(backbone_only, ch=ch, verbose=False)
        x = torch.empty(1, ch, 256, 256)
        y: list[torch.Tensor] = []
        for m in layers.eval():
            if m.f != -1:
                x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
            x = m(x)
            y.append(x)
    return [t.shape[1] for t in y]


def _activation(spec: str) -> nn.Module:
    """Return the activation a YAML's `activation:` names, e.g. `nn.LeakyReLU(0.1)`, without evaluating code."""
    m = _ACTIVATION.match(spec.replace(" ", ""))
    cls = getattr(nn, m.group(1), None) if m else None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"activation '{spec}' is not supported: write a torch.nn activation, e.g. nn.LeakyReLU(0.1)")
    args = [ast.literal_eval(a) for a in m.group(2).split(",") if a]
    return cls(*args)


def _resolve(name: str, i: int) -> type[nn.Module]:
    if name.startswith("nn.") and isinstance(getattr(nn, name[3:], None), type):
        return getattr(nn, name[3:])
    if name in _LAYERS:
        return _LAYERS[name]
    supported = ", ".join([*_LAYERS, "nn.*"])
    raise ConfigError(
        f"layer {i}: module '{name}' cannot be used in a YAML with {'/'.join(DYDET_LAYERS)} layers; "
        f"use one of: {supported}"
    )


def _parse_yolov7_family(d: dict[str, Any], ch: int, verbose: bool) -> tuple[nn.Sequential, list[int]]:
    """Build a YAML with YOLOv7-family layers; channel rules per layer as in `ultralytics.nn.tasks.parse_model`."""
    nc, act, scales = d["nc"], d.get("activation"), d.get("scales")
    depth, width, max_channels = d.get("depth_multiple", 1.0), d.get("width_multiple", 1.0), float("inf")
    if scales:
        depth, width, max_channels = scales[d.get("scale") or next(iter(scales))]

    def scaled(c: int) -> int:
        return make_divisible(min(c, max_channels) * width, 8)

    defaults = Conv.default_act, RepConv.default_act
    if act:
        Conv.default_act = RepConv.default_act = _activation(act)
        if verbose:
            LOGGER.info(f"activation: {act}")
    if verbose:
        LOGGER.info(f"\n{'':>3}{'from':>20}{'n':>3}{'params':>10}  {'module':<45}{'arguments':<30}")
    chs: list[int] = []
    layers, save = [], []
    try:
        Detect.legacy = False  # the YOLO11-style head (depthwise class branch) for this family
        for i, (f, n, name, args) in enumerate(d["backbone"] + d["head"]):
            m = _resolve(name, i)
            args = [nc if a == "nc" else _literal(a) for a in args]
            n = n_ = max(round(n * depth), 1) if n > 1 else n
            c_in = [ch] if i == 0 else chs  # widths visible to this layer's `from`
            if m in _WIDTH_FIRST:
                c2 = scaled(args[0])
                args = [c_in[f], c2, *args[1:]]
            elif m is ReOrg:
                c2 = 4 * c_in[f]
            elif m is Concat:
                c2 = sum(c_in[x] for x in f)
            elif m is CBLinear:
                args = [c_in[f], args[0], *args[1:]]
                c2 = sum(args[1])
            elif m is CBFuse:
                c2 = c_in[f[-1]]
            elif m is Detect:
                args.extend([d.get("reg_max", 16), d.get("end2end"), [c_in[x] for x in f]])
                c2 = 0
            else:  # nn.* layers keep the width
                c2 = c_in[f]
            m_ = nn.Sequential(*(m(*args) for _ in range(n))) if n > 1 else m(*args)
            if m is Detect:
                m_.legacy = False
            m_.np = sum(x.numel() for x in m_.parameters())
            m_.i, m_.f, m_.type = i, f, f"{m.__module__}.{m.__name__}"
            if verbose:
                LOGGER.info(f"{i:>3}{f!s:>20}{n_:>3}{m_.np:10.0f}  {m_.type:<45}{args!s:<30}")
            save.extend(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)
            layers.append(m_)
            chs.append(c2)
    finally:
        Conv.default_act, RepConv.default_act = defaults
    return nn.Sequential(*layers), sorted(save)


def _literal(a: Any) -> Any:
    """Turn a YAML string argument such as 'None' into its Python value; other strings ('nearest') stay strings."""
    if isinstance(a, str):
        try:
            return ast.literal_eval(a)
        except (ValueError, SyntaxError):
            return a
    return a
