"""Initialise an R-CNN model from torchvision weights: a Faster R-CNN state dict / checkpoint, or an ImageNet ResNet.

- A torchvision Faster R-CNN ResNet-FPN state dict (`backbone.body.*`, `backbone.fpn.*`, `rpn.*`, `roi_heads.*`; e.g.
  `fasterrcnn_resnet50_fpn` COCO weights, or a checkpoint dict holding one under `model` / `state_dict`): B1, FPN, RPN
  and RoI heads from it, B2's layer2-4 as copies of B1's, links zero, so that at step 0 both routes equal that model.
  The class-logit and box-regression layers are kept random when the class count differs.
- An ImageNet ResNet state dict (`conv1.*`, `layer1.*`, ..., `fc.*`): both backbones only.

Files are read with `torch.load(weights_only=True)`: a file that needs unpickling (e.g. a YOLO checkpoint) is refused.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn
from ultralytics.utils import LOGGER

from dydet.utils.errors import CheckpointError, MissingFileError

# ResNet depth -> (blocks per stage, bottleneck)
RESNET_LAYOUTS = {
    18: ((2, 2, 2, 2), False),
    34: ((3, 4, 6, 3), False),
    50: ((3, 4, 6, 3), True),
    101: ((3, 4, 23, 3), True),
}
# Box predictor entries whose shape depends on the class count
PREDICTOR = ("roi_heads.box_predictor.cls_score.", "roi_heads.box_predictor.bbox_pred.")


def resnet_depth(state: dict[str, torch.Tensor], prefix: str = "") -> int | None:
    """Return the depth of the ResNet whose weights `state` holds under `prefix`, or None if it is no ResNet."""
    blocks = []
    for i in range(1, 5):
        ids = {int(m.group(1)) for k in state if (m := re.match(rf"{re.escape(prefix)}layer{i}\.(\d+)\.", k))}
        blocks.append(max(ids) + 1 if ids else 0)
    bottleneck = f"{prefix}layer1.0.conv3.weight" in state
    for depth, (layout, bottle) in RESNET_LAYOUTS.items():
        if tuple(blocks) == layout and bottle == bottleneck:
            return depth
    return None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a torchvision state dict (or a checkpoint dict holding one under `model`/`state_dict`), weights only."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"pretrained='{path}' not found: pass a torchvision Faster R-CNN or ResNet weights file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"pretrained='{path}' is not a torchvision state dict (it holds pickled Python objects, e.g. a YOLO "
            "checkpoint): an R-CNN model takes a torchvision Faster R-CNN or ImageNet ResNet state_dict file"
        ) from e
    except Exception as e:
        raise CheckpointError(f"pretrained='{path}' is not a readable PyTorch file ({type(e).__name__})") from e
    return state_dict_of(obj, path)


def state_dict_of(obj: Any, source: Any = "pretrained") -> dict[str, torch.Tensor]:
    """Return the state dict inside `obj` (itself, or under `model` / `state_dict`), refusing anything else."""
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if (
                isinstance(obj.get(key), dict)
                and obj[key]
                and all(isinstance(v, torch.Tensor) for v in obj[key].values())
            ):
                return obj[key]
        if obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            return obj
        if isinstance(obj.get("model") or obj.get("ema"), (nn.Module, dict)):
            raise CheckpointError(
                f"pretrained='{source}' is a YOLO/dydet checkpoint, not torchvision weights: an R-CNN model takes a "
                "torchvision Faster R-CNN or ImageNet ResNet state_dict file"
            )
    raise CheckpointError(
        f"pretrained='{source}' holds no state dict: pass a torchvision Faster R-CNN or ImageNet ResNet state_dict file"
    )


def load_pretrained(model: nn.Module, weights: Any, verbose: bool = True) -> None:
    """Initialise a `RCNNDetectionModel` or `StaticRCNN` from a torchvision Faster R-CNN or ImageNet ResNet state dict.

    Args:
        model (nn.Module): The R-CNN model.
        weights (Any): A file path, a state dict, or a checkpoint dict holding one.
        verbose (bool): Log what was transferred.
    """
    state = read_state_dict(weights) if isinstance(weights, (str, Path)) else state_dict_of(weights)
    dynamic = hasattr(model, "b2")
    name = Path(model.yaml.get("yaml_file", "this model")).stem
    if any(k.startswith("backbone.body.") for k in state):
        kind, prefix = "Faster R-CNN", "backbone.body."
    elif "conv1.weight" in state and any(k.startswith("layer1.") for k in state):
        kind, prefix = "ResNet", ""
    else:
        raise CheckpointError(
            f"pretrained weights are neither a torchvision Faster R-CNN (backbone.body.*, rpn.*, roi_heads.*) nor a "
            f"ResNet (conv1.*, layer1.*) state dict; first key: {next(iter(state), '<empty>')}"
        )
    depth = resnet_depth(state, prefix)
    if depth != model.depth:
        raise CheckpointError(
            f"pretrained weights are a ResNet-{depth or '?'} {kind}, but {name} is ResNet-{model.depth}: use weights "
            f"of the same depth or the model of theirs (e.g. {'dy-' if dynamic else ''}faster-rcnn-r{depth}.yaml)"
        )
    mapped = {}
    for key, value in state.items():
        if kind == "ResNet":
            if key.startswith("fc."):
                continue
            key = f"backbone.body.{key}"
        if key.startswith("backbone.body."):
            rest = key[len("backbone.body.") :]
            mapped[f"b1.{rest}" if dynamic else key] = value
            if dynamic and rest.startswith(("layer2.", "layer3.", "layer4.")):
                mapped[f"b2.{rest}"] = value
        elif key.startswith("backbone.fpn."):
            mapped[f"fpn.{key[len('backbone.fpn.') :]}" if dynamic else key] = value
        else:
            mapped[key] = value
    own = model.state_dict()
    kept = [k for k in mapped if k.startswith(PREDICTOR) and k in own and own[k].shape != mapped[k].shape]
    unexpected = [k for k in mapped if k not in own and not k.endswith("num_batches_tracked")]
    wrong = [k for k in mapped if k in own and own[k].shape != mapped[k].shape and k not in kept]
    if unexpected or wrong:
        k = (unexpected or wrong)[0]
        raise CheckpointError(
            f"pretrained {kind} weights do not fit {name}: {k} "
            + (
                "is not in the model"
                if k in unexpected
                else f"has shape {tuple(mapped[k].shape)}, needs {tuple(own[k].shape)}"
            )
        )
    load = {k: v for k, v in mapped.items() if k in own and k not in kept}
    with torch.no_grad():
        for k, v in load.items():
            own[k].copy_(v)
    if dynamic:
        model.links.zero_()
    if verbose:
        extra = f"; class layers kept random ({len(kept)} tensors: another class count)" if kept else ""
        parts = "B1, FPN, RPN, RoI heads, B2 = B1's layer2-4" if kind == "Faster R-CNN" else "the backbones"
        LOGGER.info(
            f"Initialised {parts if dynamic else 'the model'} from a ResNet-{depth} {kind}{extra}; links zeroed"
        )
