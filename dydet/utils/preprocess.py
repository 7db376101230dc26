"""What the router sees: prediction's image preprocessing, in one place.

The predictor and the router scoring of validation and calibration (`prediction_scores`) both turn image files into
model input through `preprocess_images`, so an image's router score does not depend on which command computed it
(`predict`, `val`, calibration) nor on the batch it came in: every image is letterboxed to the full square `imgsz`
(Ultralytics' `predict` letterboxes a lone image to its smallest stride multiple and a batch of mixed shapes to the
square, and its validator pads rectangular batches; either would shift the scores the thresholds were calibrated on).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from ultralytics.data.augment import LetterBox
from ultralytics.utils.checks import check_imgsz
from ultralytics.utils.patches import imread

from dydet.utils.errors import DataError


def letterbox_images(images: Sequence[np.ndarray], imgsz: int | Sequence[int]) -> list[np.ndarray]:
    """Letterbox BGR images to the square (or given) `imgsz`, as prediction does.

    Args:
        images (Sequence[np.ndarray]): (H, W, 3) BGR uint8 images.
        imgsz (int | Sequence[int]): Target size, an int or (h, w), already a stride multiple.

    Returns:
        (list[np.ndarray]): The letterboxed images.
    """
    letterbox = LetterBox(imgsz, auto=False)
    return [letterbox(image=im) for im in images]


def preprocess_images(
    images: Sequence[np.ndarray], imgsz: int | Sequence[int], device: torch.device | str, dtype: torch.dtype
) -> torch.Tensor:
    """Turn BGR uint8 images into the (B, 3, H, W) RGB input in [0, 1] that a dynamic model predicts on.

    Args:
        images (Sequence[np.ndarray]): (H, W, 3) BGR uint8 images.
        imgsz (int | Sequence[int]): Model input size (a stride multiple).
        device (torch.device | str): Where the batch goes.
        dtype (torch.dtype): The model's floating dtype.

    Returns:
        (torch.Tensor): The batch.
    """
    boxed = letterbox_images(images, imgsz)
    x = torch.from_numpy(np.stack(boxed)).to(device)
    return x.permute(0, 3, 1, 2).flip(1).contiguous().to(dtype).div_(255)


def read_image(file: str | Path) -> np.ndarray:
    """Read an image file as prediction does (BGR, 3 channels); a file OpenCV cannot read gets a one-line error."""
    im = imread(str(file), flags=cv2.IMREAD_COLOR)
    if im is None:
        raise DataError(f"cannot read image '{file}': the file is missing, empty or not an image; remove or replace it")
    return im


def model_imgsz(imgsz: int | Sequence[int], stride: int) -> list[int]:
    """Return `imgsz` as prediction uses it: (h, w), each rounded up to a multiple of the model's largest stride."""
    return check_imgsz(imgsz, stride=stride, min_dim=2)


@torch.inference_mode()
def prediction_scores(
    model: torch.nn.Module,
    files: Sequence[str | Path],
    imgsz: int | Sequence[int],
    batch: int = 16,
    logits: bool = False,
) -> list[float]:
    """Return the router's easiness score of every image file, computed on exactly what `predict` feeds the model.

    Args:
        model (torch.nn.Module): A dynamic model (`DetectorFamily`: has `router_scores`, `router` and `stride`); it
            runs in eval mode and is left in the mode it was in.
        files (Sequence[str | Path]): Image files.
        imgsz (int | Sequence[int]): Prediction image size.
        batch (int): Images scored at once (the scores do not depend on it).
        logits (bool): Return the router's logits (before the sigmoid, which saturates in float32) instead.

    Returns:
        (list[float]): One score (or logit) per file, in order.
    """
    param = next(model.parameters())
    stride = int(torch.as_tensor(model.stride).max()) if getattr(model, "stride", None) is not None else 32
    size = model_imgsz(imgsz, stride)
    outputs: list[torch.Tensor] = []
    hook = model.router.score.register_forward_hook(lambda m, i, o: outputs.append(o.flatten())) if logits else None
    scores: list[float] = []
    training = model.training
    model.eval()  # BatchNorm with running statistics, as deployed
    try:
        for i in range(0, len(files), batch):
            x = preprocess_images([read_image(f) for f in files[i : i + batch]], size, param.device, param.dtype)
            scores.extend(model.router_scores(x).float().cpu().tolist())
    finally:
        model.train(training)
        if hook is not None:
            hook.remove()
    return torch.cat(outputs).float().cpu().tolist() if logits else scores
