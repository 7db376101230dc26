"""R-CNN model YAMLs: load `dy-faster-rcnn-r50.yaml` / `faster-rcnn-r18.yaml`; the ResNet depth comes from the name.

The file is found by the one model-YAML resolver, `dydet.nn.builder.resolve_model_yaml`, which this module teaches the
family's scaled names (`SCALED`).
"""

from __future__ import annotations

import re
from copy import deepcopy
from pathlib import Path
from typing import Any

from dydet.nn.builder import register_scaled_name, resolve_model_yaml
from dydet.utils.errors import ConfigError, MissingFileError

DEPTHS = (18, 34, 50, 101)
SCALED = r"^(?P<base>.*)-(?P<scale>r\d+)$"  # dy-faster-rcnn-r50: the ResNet depth as the scale
register_scaled_name(SCALED)


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
        path, m = resolve_model_yaml(cfg), re.match(SCALED, Path(cfg).stem)
        scale = m["scale"] if m else None
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
