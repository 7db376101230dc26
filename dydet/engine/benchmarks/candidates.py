"""What a benchmark compares: the dynamic model, its family's static baselines and the benchmark images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from dydet.cfg import MODELS_DIR
from dydet.engine.benchmarks.result import SCALES
from dydet.nn.checkpoint import checkpoint_model, load_checkpoint_dict, require_dynamic
from dydet.nn.parse import check_buildable, needs_dydet_parser
from dydet.nn.rcnn import RCNNDetectionModel, StaticRCNN, is_rcnn_cfg
from dydet.nn.rcnn.config import DEPTHS
from dydet.nn.tasks import DynamicDetectionModel, StaticDetectionModel
from dydet.utils.errors import MissingFileError
from dydet.utils.torch_utils import fused_eval_copy


# ------------------------------------------------------------------------------------------------------------ inputs
def default_baselines(model: DynamicDetectionModel) -> tuple[Any, ...]:
    """Return the static models a dynamic model competes with: its base at the same scale and the next scale up.

    E.g. `dy-yolo11n` -> ('yolo11n.yaml', 'yolo11s.yaml'); `dy-yolov8m` -> ('yolov8m.yaml', 'yolov8l.yaml');
    a scale pair `dy-yolo11n-s` -> ('yolo11n.yaml', 'yolo11s.yaml', 'dy-yolo11n.yaml'), the last timed on its hard route
    (`HardRoute`: its easy route is yolo11n);
    `dy-faster-rcnn-r50` -> static Faster R-CNN R50 and R101 models (with its RPN / RoI settings). A YAML
    whose `dynamic:` section lists `baselines` (e.g. dy-yolov7: yolov7 and yolov7x, as the paper compares) gets those.
    """
    if model.yaml.get("dynamic", {}).get("baselines"):
        return tuple(model.yaml["dynamic"]["baselines"])
    if model.yaml.get("family") == "rcnn":  # the static Faster R-CNN of the same depth and the next one up
        # built with the dynamic model's own RPN / RoI settings (`detector:`), so that only the backbone differs
        static = {k: v for k, v in model.yaml.items() if k not in {"dynamic", "scale", "scales"}}
        i = DEPTHS.index(model.yaml["depth"])
        return tuple(
            StaticRCNN({**static, "depth": d, "yaml_file": f"faster-rcnn-r{d}.yaml"}, nc=model.nc, verbose=False)
            for d in DEPTHS[i : i + 2]
        )
    base, scale = model.yaml.get("dynamic", {}).get("base"), model.yaml.get("scale")
    if not base or scale not in SCALES:
        return ()
    hard = model.yaml.get("hard_scale")
    if hard and hard != scale:  # a scale pair (dy-yolo11n-s): both static scales and the homogeneous Dy model
        stem = Path(str(model.yaml.get("yaml_file") or f"dy-{base}{scale}-{hard}")).stem
        return f"{base}{scale}.yaml", f"{base}{hard}.yaml", f"{stem[: -len(hard) - 1]}.yaml"
    i = SCALES.index(scale)
    return tuple(f"{base}{s}.yaml" for s in SCALES[i : i + 2])


def static_base_name(model: DynamicDetectionModel) -> str | None:
    """Return the name of the static model of the same base and scale (e.g. 'yolo11n'), or None if unknown."""
    if model.yaml.get("family") == "rcnn":
        return f"faster-rcnn-r{model.yaml['depth']}"
    base, scale = model.yaml.get("dynamic", {}).get("base"), model.yaml.get("scale")
    return f"{base}{scale}" if base and scale else base if base and not model.yaml.get("scales") else None


def parse_baselines(baselines: Any) -> list[Any]:
    """Normalise `baselines`: a comma-separated string, a sequence of names/paths/models, or 'none'/'' for none."""
    if baselines is None:
        return []
    if isinstance(baselines, (str, Path)):
        s = str(baselines).strip()
        return [] if s.lower() in {"", "none", "null", "false"} else [p.strip() for p in s.split(",") if p.strip()]
    if isinstance(baselines, nn.Module):
        return [baselines]
    return list(baselines)


def _label(spec: Any, model: nn.Module, i: int) -> str:
    """Name a baseline: its file stem, else its model YAML's stem, else 'static<i>'."""
    if isinstance(spec, (str, Path)):
        stem = Path(str(spec)).stem
        stem = stem if stem not in {"best", "last"} else f"{Path(str(spec)).parent.parent.name}-{stem}"
        return stem + ("-hard" if isinstance(model, HardRoute) else "")
    yaml = getattr(model, "yaml", None)
    yaml_file = yaml.get("yaml_file") if isinstance(yaml, dict) else None
    return Path(yaml_file).stem if yaml_file else f"static{i}"


def load_static(spec: Any, nc: int) -> nn.Module:
    """Return a static detection model: built from a YAML (random weights, `nc` classes) or loaded from a `.pt`."""
    from ultralytics.nn.tasks import DetectionModel, yaml_model_load

    if isinstance(spec, DetectionModel):
        return spec
    if isinstance(getattr(spec, "model", None), nn.Module):  # an ultralytics.YOLO
        return spec.model
    if isinstance(spec, nn.Module):
        return spec
    if str(spec).endswith(".pt"):
        model = checkpoint_model(load_checkpoint_dict(spec))
        return HardRoute(model) if isinstance(model, DynamicDetectionModel) else model

    if is_rcnn_cfg(spec):
        return StaticRCNN(str(spec), nc=nc, verbose=False)
    if is_dynamic_yaml(spec):
        return HardRoute(DynamicDetectionModel(str(spec), nc=nc, verbose=False))
    if built_by_dydet(spec):
        return StaticDetectionModel(str(spec), nc=nc, verbose=False)
    d = yaml_model_load(str(spec))  # Ultralytics builds it: dydet's size and download checks first
    check_buildable(d, "baseline YAML")
    return DetectionModel(d, nc=nc, verbose=False)


class HardRoute(nn.Module):
    """A dynamic model as a baseline, run on its hard route (its easy route is the static model of its scale).

    Attributes:
        model (DynamicDetectionModel): The dynamic model.
    """

    def __init__(self, model: DynamicDetectionModel):
        """Wrap `model`; its stride and YAML are this baseline's (for GFLOPs)."""
        super().__init__()
        self.model, self.stride, self.yaml = model, model.stride, model.yaml

    def fuse(self, verbose: bool = False) -> HardRoute:
        """Fuse the dynamic model's Conv+BN layers, as deployment runs it."""
        self.model.fuse(verbose=verbose)
        return self

    def forward(self, x: torch.Tensor) -> Any:
        """Run every image through the hard route."""
        return self.model(x, route="hard")


def is_dynamic_yaml(spec: Any) -> bool:
    """Return True for a dydet dynamic model YAML (a path or a shipped name such as dy-yolo11n.yaml)."""
    from dydet.nn.builder import load_model_yaml

    if not isinstance(spec, (str, Path)) or not str(spec).endswith((".yaml", ".yml")):
        return False
    try:
        load_model_yaml(spec, dynamic=True)
    except (FileNotFoundError, ValueError):
        return False
    return True


def built_by_dydet(spec: Any) -> bool:
    """Return True for a static model YAML (a path or a dydet-shipped name) that only dydet's parser builds."""
    import yaml

    path = Path(str(spec))
    path = path if path.is_file() else MODELS_DIR / path.name
    if path.suffix not in {".yaml", ".yml"} or not path.is_file():
        return False
    d = yaml.safe_load(path.read_text())
    return isinstance(d, dict) and needs_dydet_parser({"backbone": [], "head": [], **d})


def load_dynamic(model: Any) -> DynamicDetectionModel:
    """Return the `DynamicDetectionModel` behind a `DynamicYOLO`, a model, a dydet YAML name or a checkpoint path."""
    if isinstance(model, (DynamicDetectionModel, RCNNDetectionModel)):
        return model
    if isinstance(getattr(model, "model", None), (DynamicDetectionModel, RCNNDetectionModel)):
        return model.model
    if isinstance(model, (str, Path)):
        if str(model).endswith(".pt"):
            m = checkpoint_model(load_checkpoint_dict(model))
            require_dynamic(m, model)
            return m
        return (RCNNDetectionModel if is_rcnn_cfg(model) else DynamicDetectionModel)(str(model), verbose=False)
    raise TypeError(f"cannot benchmark a {type(model).__name__}: pass a dydet model, DynamicYOLO, YAML or checkpoint")


def _prepare(model: nn.Module) -> nn.Module:
    """Return a fused fp32 eval-mode copy of a model on the CPU (the caller's model is left untouched)."""
    return fused_eval_copy(model).float().cpu()


def benchmark_images(n: int, imgsz: int, source: Any = None, seed: int = 0) -> torch.Tensor:
    """Return `n` benchmark images (n, 3, imgsz, imgsz) in [0, 1].

    Args:
        n (int): Number of images.
        imgsz (int): Square side.
        source (Any): None for random images of graded brightness (so that a router can tell them apart); a tensor;
            a folder or list of image files; or a data YAML (its validation images). Files are resized (not
            letterboxed: only shapes matter for timing) and cycled if fewer than `n`.
        seed (int): Seed of the random images.
    """
    if source is None:
        g = torch.Generator().manual_seed(seed)
        return torch.rand(n, 3, imgsz, imgsz, generator=g) * torch.linspace(0.05, 1.0, n).view(n, 1, 1, 1)
    if isinstance(source, torch.Tensor):
        x = source.float()
        x = x if x.shape[-2:] == (imgsz, imgsz) else nn.functional.interpolate(x, size=(imgsz, imgsz))
        return x[torch.arange(n) % len(x)]
    import cv2
    import numpy as np
    from ultralytics.data.utils import IMG_FORMATS

    files: list[Path] = []
    for s in [source] if isinstance(source, (str, Path)) else list(source):
        p = Path(s)
        if p.suffix in {".yaml", ".yml"}:
            from ultralytics.data.utils import check_det_dataset

            val = check_det_dataset(str(p))["val"]
            for v in [val] if isinstance(val, (str, Path)) else val:
                files += sorted(f for f in Path(v).rglob("*") if f.suffix[1:].lower() in IMG_FORMATS)
        elif p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix[1:].lower() in IMG_FORMATS)
        else:
            files.append(p)
    if not files:
        raise MissingFileError(f"no images found in {source!r} for the benchmark")
    ims = []
    for f in (files[i % len(files)] for i in range(n)):
        im = cv2.imread(str(f))
        if im is None:
            raise MissingFileError(f"cannot read image {f}")
        im = cv2.resize(im, (imgsz, imgsz), interpolation=cv2.INTER_LINEAR)[..., ::-1]
        ims.append(torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1).float() / 255)
    return torch.stack(ims)
