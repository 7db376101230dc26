"""R-CNN model YAMLs: find `dy-faster-rcnn-r50.yaml` / `faster-rcnn-r18.yaml`; the ResNet depth comes from the name."""

from __future__ import annotations

import re
from copy import deepcopy
from pathlib import Path
from typing import Any

from dydet.cfg import MODELS_DIR
from dydet.utils.errors import ConfigError, MissingFileError

DEPTHS = (18, 34, 50, 101)
_SCALED = re.compile(r"^(.*)-(r\d+)$")


def is_rcnn_cfg(cfg: Any) -> bool:
    """Return whether `cfg` (a YAML path, a shipped name or a model dict) is an R-CNN family model YAML."""
    if isinstance(cfg, dict):
        return cfg.get("family") == "rcnn"
    if not str(cfg).lower().endswith((".yaml", ".yml")):
        return False
    try:
        return load_rcnn_yaml(cfg).get("family") == "rcnn"
    except (ConfigError, MissingFileError, OSError):
        return False


def resolve_rcnn_yaml(cfg: str | Path) -> tuple[Path, str | None]:
    """Return the YAML file of an R-CNN model name and the scale the name asks for ('r50'), or None.

    `dy-faster-rcnn-r50.yaml` resolves to the shipped `dy-faster-rcnn.yaml` with scale 'r50', as Ultralytics resolves
    `yolo11n.yaml` to `yolo11.yaml` with scale 'n'.
    """
    path = Path(cfg)
    m = _SCALED.match(path.stem)
    scale = m.group(2) if m else None
    if path.is_file():
        return path, scale
    candidates = [MODELS_DIR / path.name] + ([MODELS_DIR / f"{m.group(1)}{path.suffix or '.yaml'}"] if m else [])
    for candidate in candidates:
        if candidate.is_file():
            return candidate, scale
    raise MissingFileError(
        f"model YAML '{cfg}' not found; pass a file path or a shipped name such as dy-faster-rcnn-r50.yaml"
    )


def load_rcnn_yaml(cfg: str | Path | dict) -> dict[str, Any]:
    """Load an R-CNN model YAML into a dict with `depth`, `scale` and `yaml_file` set.

    Args:
        cfg (str | Path | dict): A YAML path, a shipped (scaled) name, or an already loaded model dict.

    Returns:
        (dict): The model dictionary.
    """
    from ultralytics.utils import YAML

    if isinstance(cfg, dict):
        d = deepcopy(cfg)
    else:
        path, scale = resolve_rcnn_yaml(cfg)
        d = YAML.load(path)
        if d.get("family") != "rcnn":
            return d  # not an R-CNN YAML: the caller decides
        scales = d.get("scales") or {}
        if scale is None and "depth" not in d:
            scale = next(iter(scales), None)
        if scale is not None:
            if scale not in scales:
                raise ConfigError(f"{path} has no scale '{scale}'; it defines {', '.join(scales)}")
            d["depth"] = int(scales[scale][0])
        d["scale"] = scale
        d["yaml_file"] = str(Path(cfg).name if not Path(cfg).is_file() else cfg)
    detector = d.get("detector") or {}
    if not isinstance(detector, dict) or not all(
        isinstance(k, str) and isinstance(v, (int, float, bool)) for k, v in detector.items()
    ):
        raise ConfigError(
            f"R-CNN model YAML 'detector:' must map FasterRCNN argument names to numbers, got {detector!r}"
        )
    depth = d.get("depth")
    if depth not in DEPTHS:
        raise ConfigError(f"R-CNN model YAML has ResNet depth {depth!r}; use one of {DEPTHS} (e.g. scale r50)")
    return d
