"""Loading and checking dydet checkpoints, with errors that name the file and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def load_checkpoint_dict(path: str | Path) -> dict[str, Any]:
    """Read a `.pt` file into its checkpoint dict, with a clear error for a missing or unreadable file.

    Args:
        path (str | Path): The checkpoint file.

    Returns:
        (dict): The checkpoint dict (`model`/`ema`, `train_args`, ...).
    """
    from ultralytics.nn.tasks import torch_safe_load

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint '{path}' not found: check the path (train one with 'dydet train')")
    try:
        ckpt, _ = torch_safe_load(str(path))
    except Exception as e:  # torch raises several types for a truncated or foreign file
        raise ValueError(f"checkpoint '{path}' is not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict) or (ckpt.get("ema") or ckpt.get("model")) is None:
        raise ValueError(f"checkpoint '{path}' holds no model: it is not an Ultralytics/dydet checkpoint")
    return ckpt


def checkpoint_model(ckpt: dict[str, Any]) -> torch.nn.Module:
    """Return the model object stored in a checkpoint dict (EMA first, as Ultralytics does), in float32."""
    return (ckpt.get("ema") or ckpt["model"]).float()


def require_dynamic(model: Any, source: str | Path) -> None:
    """Raise a clear error unless `model` is a dydet dynamic model.

    Args:
        model (Any): The loaded model object.
        source (str | Path): Where it came from, for the message.
    """
    from dydet.nn.tasks import DynamicDetectionModel

    if not isinstance(model, DynamicDetectionModel):
        kind = type(model).__name__
        raise ValueError(
            f"'{source}' holds a {kind}, not a dydet dynamic model; use a dydet checkpoint or YAML "
            f"(an Ultralytics detection checkpoint can initialise one: dydet train pretrained={source})"
        )


def require_detection(model: Any, source: str | Path) -> None:
    """Raise a clear error unless `model` can initialise a dydet model (a dydet or a plain Ultralytics detection model).

    Args:
        model (Any): The loaded model object.
        source (str | Path): Where it came from, for the message.
    """
    from ultralytics.nn.modules import Detect
    from ultralytics.nn.tasks import DetectionModel

    from dydet.nn.tasks import DynamicDetectionModel

    if isinstance(model, DynamicDetectionModel) or (
        isinstance(model, DetectionModel) and type(model.model[-1]) is Detect
    ):
        return
    raise ValueError(
        f"pretrained='{source}' holds a {type(model).__name__}, not a detection model: pass an Ultralytics detection "
        f"checkpoint of the same base and scale (e.g. yolo11n.pt for dy-yolo11n) or a dydet checkpoint"
    )
