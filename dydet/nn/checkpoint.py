"""Model checkpoints: a model saved as a weights-only record, and rebuilt from its record when loaded.

A dydet checkpoint is the dict Ultralytics' trainer writes (`epoch`, `optimizer`, `train_args`, ...) except that its
`model` / `ema` entries are not pickled modules but *model records*, plain containers and tensors:

    {"format": "dydet.model/1", "class": "DynamicDetectionModel" | "StaticDetectionModel" | "DynamicRCNN",
     "yaml": the model YAML, "state_dict": {name: tensor}, "names", "stride", "threshold", "calibration", "stage",
     "args", "task"}

so the whole file loads with `torch.load(weights_only=True)` (`dydet.utils.checkpoint.load_raw`) and the model is
rebuilt here from its YAML (with Ultralytics' restricted model construction: no `eval`, only known layers) before the
state dict is loaded into it. Reading order and trust: see `dydet.utils.checkpoint`.
"""

from __future__ import annotations

import ast
import contextlib
import io
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import ultralytics.nn.tasks as ultralytics_tasks
from ultralytics.nn.modules import Detect
from ultralytics.utils import DEFAULT_CFG_DICT

from dydet.nn.family import DetectorFamily
from dydet.nn.limits import check_model_size, check_parameters
from dydet.nn.parse import DYDET_LAYERS
from dydet.nn.rcnn import RCNNDetectionModel
from dydet.nn.tasks import DynamicDetectionModel, StaticDetectionModel
from dydet.utils.checkpoint import MODEL_FORMAT, MODEL_KEYS, atomic_write_bytes, is_model_record, load_raw, to_plain
from dydet.utils.checkpoint.trust import _TRUST, _refusal
from dydet.utils.errors import CheckpointError

# ----------------------------------------------------------------------------------------------------- model records
# The model classes a dydet model record can hold, by the name in its `class` entry (the allow-list). The names are
# the record format: the R-CNN model class was called `DynamicRCNN` when the format was fixed and keeps that name here.
MODEL_CLASSES: dict[str, type[torch.nn.Module]] = {
    "DynamicDetectionModel": DynamicDetectionModel,
    "StaticDetectionModel": StaticDetectionModel,
    "DynamicRCNN": RCNNDetectionModel,
}
RECORD_NAMES = {cls: name for name, cls in MODEL_CLASSES.items()}


def model_record(model: torch.nn.Module) -> dict[str, Any]:
    """Return the weights-only record of a dydet model (see the module docstring).

    Args:
        model (torch.nn.Module): A `DynamicDetectionModel`, or a `StaticDetectionModel` (the static YOLOv7-family
            models only dydet builds), in any dtype; tensors are stored as they are.

    Returns:
        (dict): The record.
    """
    if type(model) not in RECORD_NAMES:
        names = ", ".join(c.__name__ for c in RECORD_NAMES)
        raise TypeError(f"dydet saves {names} checkpoints only, got a {type(model).__name__}")
    if model.is_fused():
        raise CheckpointError("cannot save a fused model (Conv+BN folded): save the model before calling fuse()")
    args = getattr(model, "args", None)
    return {
        "format": MODEL_FORMAT,
        "class": RECORD_NAMES[type(model)],
        "yaml": to_plain(model.yaml),
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "names": to_plain(dict(model.names)),
        "stride": model.stride.detach().clone() if isinstance(model.stride, torch.Tensor) else to_plain(model.stride),
        "threshold": float(getattr(model, "threshold", 0.5)),  # routing state: defaults on a static model
        "calibration": to_plain(getattr(model, "calibration", None)),
        "stage": int(getattr(model, "stage", 0)),
        "args": to_plain(dict(vars(args)) if hasattr(args, "__dict__") else dict(args or {})),
        "task": "detect",
    }


# Layers that can fetch files while they are built (torchvision's pretrained weights): a stored YAML naming one could
# make loading a checkpoint reach the network.
FETCHING_LAYERS = frozenset({"TorchVision"})

_ACTIVATION = re.compile(r"(torch\.)?nn\.[A-Za-z_]\w*\(.*\)", re.DOTALL)


def _check_model_yaml(cfg: dict[str, Any], source: Path) -> None:
    """Refuse a checkpoint's model YAML that would make the model builder call anything but known layers.

    Ultralytics' `parse_model` looks layer names up in its module namespace and `eval`s the activation; a checkpoint
    is untrusted input, so every name must resolve to an `nn.Module` class and the activation must be a literal
    `nn.<Class>(literals)` call (the model is also built under Ultralytics' restricted mode, which does the same).
    """
    act = cfg.get("activation")
    if act is not None:
        ok = isinstance(act, str) and _ACTIVATION.fullmatch(act.strip()) is not None
        if ok:
            call = ast.parse(act.strip(), mode="eval").body
            ok = isinstance(call, ast.Call) and all(
                isinstance(a, ast.Constant) for a in [*call.args, *(k.value for k in call.keywords)]
            )
            cls = getattr(torch.nn, act.strip().split("(")[0].rsplit(".", 1)[-1], None)
            ok = ok and isinstance(cls, type) and issubclass(cls, torch.nn.Module)
        if not ok:
            raise _refusal(source, f"its model YAML has an unsupported activation {act!r}")
    for section in ("backbone", "head"):
        layers = cfg.get(section)
        if not isinstance(layers, list):
            raise CheckpointError(f"checkpoint '{source}' is damaged: its model YAML has no '{section}' list")
        for layer in layers:
            name = layer[2] if isinstance(layer, (list, tuple)) and len(layer) == 4 else None
            if not isinstance(name, str):
                raise CheckpointError(f"checkpoint '{source}' is damaged: bad layer {layer!r} in its model YAML")
            if name in FETCHING_LAYERS and not _TRUST.get():
                raise _refusal(source, f"its model YAML names {name!r}, a layer that can download files when built")
            if name.startswith("nn."):
                m = getattr(torch.nn, name[3:], None)
            elif name.startswith("torchvision.ops."):
                import torchvision

                m = getattr(torchvision.ops, name[16:], None)
            else:
                # Ultralytics' layers, then dydet's (SPPCSPC, ...)
                m = vars(ultralytics_tasks).get(name) or DYDET_LAYERS.get(name)
            if not (isinstance(m, type) and issubclass(m, torch.nn.Module)):
                raise _refusal(source, f"its model YAML names {name!r}, which is not a model layer")


@contextlib.contextmanager
def _restricted_build() -> Iterator[None]:
    """Build models with Ultralytics' restricted `parse_model` (no `eval`, only known layers), where available."""
    safe = getattr(ultralytics_tasks, "_SafeLoad", None)
    local = getattr(safe, "_local", None)
    if local is None:
        yield
        return
    before = getattr(local, "active", False)
    local.active = True
    try:
        yield
    finally:
        local.active = before


def build_model(record: dict[str, Any], source: str | Path = "checkpoint") -> torch.nn.Module:
    """Rebuild a dydet model from its record: model from the YAML, then the state dict (float32).

    Args:
        record (dict): A model record (`model_record`).
        source (str | Path): The file it came from, for messages.

    Returns:
        (DynamicDetectionModel | StaticDetectionModel): The model (the record's `class`), in float32.
    """
    source = Path(source)
    cfg = record.get("yaml")
    if not isinstance(cfg, dict) or not isinstance(record.get("state_dict"), dict):
        raise CheckpointError(f"checkpoint '{source}' is damaged: its model record has no YAML or no weights")
    model_class = MODEL_CLASSES.get(record.get("class", "DynamicDetectionModel"))
    if model_class is None:
        raise _refusal(source, f"its model record names the class {record.get('class')!r}, which dydet does not build")
    check_parameters(record["state_dict"], f"checkpoint '{source}'")
    if model_class is not RCNNDetectionModel:
        check_model_size(cfg, f"checkpoint '{source}'")
        _check_model_yaml(cfg, source)  # the R-CNN builder reads only numbers from its YAML (a ResNet depth, ...)
    try:
        with _restricted_build():
            model = model_class(cfg, ch=int(cfg.get("channels", 3)), nc=cfg.get("nc"), verbose=False)
    except (TypeError, KeyError, IndexError, ValueError) as e:
        raise CheckpointError(f"checkpoint '{source}' is damaged: its model YAML does not build ({e})") from e
    state = {k: v.float() if v.is_floating_point() else v for k, v in record["state_dict"].items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise CheckpointError(
            f"checkpoint '{source}' is damaged: its weights do not fit its model YAML ({first})"
        ) from e
    model.names = dict(record.get("names") or model.names)
    if isinstance(record.get("stride"), torch.Tensor):
        model.stride = record["stride"].float()
    if isinstance(model, DetectorFamily):  # routing state; a static model has none
        model.threshold = float(record.get("threshold", model.threshold))
        model.calibration = _checked_calibration(record.get("calibration"), source)
        model.stage = int(record.get("stage", 0))
    model.args = dict(record.get("args") or {})
    model.task = "detect"
    return model


def _checked_calibration(calibration: Any, source: Path) -> dict[str, Any] | None:
    """Return a record's calibration, refusing one whose scores are not a non-empty list of finite numbers."""
    if calibration is None:
        return None
    scores = calibration.get("scores") if isinstance(calibration, dict) else None
    ok = isinstance(scores, (list, tuple)) and len(scores) > 0
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in scores)
    if not ok:
        raise CheckpointError(
            f"checkpoint '{source}' is damaged: its calibration scores are not a list of numbers; calibrate again: "
            f"dydet train model={source} stage=calibrate"
        )
    return calibration


# ---------------------------------------------------------------------------------------------------------- loading
def load_checkpoint_dict(path: str | Path, trust: bool | None = None) -> dict[str, Any]:
    """Read a `.pt` file into its checkpoint dict, models rebuilt, refusing anything that would run code.

    Args:
        path (str | Path): The checkpoint file.
        trust (bool | None): Allow arbitrary unpickling (unsafe); None uses the current `trusting` setting.

    Returns:
        (dict): The checkpoint dict; `model` / `ema` are model objects (or None).
    """
    ckpt = load_raw(path, trust)
    path = Path(path)
    for key in MODEL_KEYS:
        if is_model_record(ckpt.get(key)):
            ckpt[key] = build_model(ckpt[key], path)
    if not isinstance(ckpt.get("ema") or ckpt.get("model"), torch.nn.Module):
        raise CheckpointError(f"checkpoint '{path}' holds no model: it is not an Ultralytics/dydet checkpoint")
    require_finite(ckpt.get("ema") or ckpt["model"], path)
    return ckpt


def require_finite(model: torch.nn.Module, source: str | Path) -> None:
    """Refuse a model with NaN or infinite weights (it would predict nothing, silently), naming the first tensor."""
    for name, t in model.state_dict().items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise CheckpointError(
                f"checkpoint '{source}' has non-finite (NaN or infinite) weights in '{name}': the training diverged "
                "or the file is damaged; use an earlier checkpoint or train again"
            )


def checkpoint_model(ckpt: dict[str, Any]) -> torch.nn.Module:
    """Return the model object stored in a checkpoint dict (EMA first, as Ultralytics does), in float32."""
    return (ckpt.get("ema") or ckpt["model"]).float()


def load_checkpoint(path: str | Path, trust: bool | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Load a checkpoint like `ultralytics.nn.tasks.load_checkpoint`, but safely: (float32 eval model, ckpt dict).

    Args:
        path (str | Path): The checkpoint file.
        trust (bool | None): Allow arbitrary unpickling (unsafe); None uses the current `trusting` setting.

    Returns:
        (tuple[torch.nn.Module, dict]): The model (with `args`, `pt_path`, `task` set) and the checkpoint dict.
    """
    ckpt = load_checkpoint_dict(path, trust)
    model = checkpoint_model(ckpt)
    model.args = {**DEFAULT_CFG_DICT, **(ckpt.get("train_args") or {})}
    model.pt_path = str(path)
    model.task = getattr(model, "task", None) or "detect"
    if not hasattr(model, "stride"):
        model.stride = torch.tensor([32.0])
    return model.eval(), ckpt


# ----------------------------------------------------------------------------------------------------------- saving
def pack_checkpoint(ckpt: dict[str, Any]) -> dict[str, Any]:
    """Return `ckpt` in the weights-only form: model objects as records, every other value plain."""
    out = {}
    for k, v in ckpt.items():
        if k in MODEL_KEYS and isinstance(v, torch.nn.Module):
            out[k] = model_record(v)
        elif k in MODEL_KEYS and is_model_record(v):
            out[k] = v
        elif k in {"optimizer", "scaler"}:
            out[k] = v  # state dicts: tensors and numbers
        else:
            out[k] = to_plain(v)
    return out


def serialize_checkpoint(ckpt: dict[str, Any]) -> bytes:
    """Return the bytes of `ckpt` saved in the weights-only form."""
    buffer = io.BytesIO()
    torch.save(pack_checkpoint(ckpt), buffer)
    return buffer.getvalue()


def save_checkpoint(ckpt: dict[str, Any], path: str | Path) -> Path:
    """Save a checkpoint dict in the weights-only form, atomically.

    Args:
        ckpt (dict): The checkpoint (`model` / `ema` as model objects or records).
        path (str | Path): The destination `.pt`.

    Returns:
        (Path): `path`.
    """
    return atomic_write_bytes(path, serialize_checkpoint(ckpt))


# ------------------------------------------------------------------------------------------------------------- checks
def require_dynamic(model: Any, source: str | Path) -> None:
    """Raise a clear error unless `model` is a dydet dynamic model.

    Args:
        model (Any): The loaded model object.
        source (str | Path): Where it came from, for the message.
    """
    if type(model) is StaticDetectionModel:
        raise CheckpointError(
            f"'{source}' holds a static (single-route) YOLOv7-family model, not a dydet dynamic model: use it with "
            f"dydet.StaticYOLO, or initialise both routes of a Dy model from it: dydet train pretrained={source}"
        )
    if not isinstance(model, tuple(RECORD_NAMES)):
        kind = type(model).__name__
        raise CheckpointError(
            f"'{source}' holds a {kind}, not a dydet dynamic model; use a dydet checkpoint or YAML "
            f"(an Ultralytics detection checkpoint can initialise one: dydet train pretrained={source})"
        )


def require_detection(model: Any, source: str | Path) -> None:
    """Raise a clear error unless `model` can initialise a dydet model (a dydet or a plain Ultralytics detection model).

    Args:
        model (Any): The loaded model object.
        source (str | Path): Where it came from, for the message.
    """
    if isinstance(model, DynamicDetectionModel) or (
        isinstance(model, ultralytics_tasks.DetectionModel) and type(model.model[-1]) is Detect
    ):
        return
    raise CheckpointError(
        f"pretrained='{source}' holds a {type(model).__name__}, not a detection model: pass an Ultralytics detection "
        f"checkpoint of the same base and scale (e.g. yolo11n.pt for dy-yolo11n) or a dydet checkpoint"
    )
