"""Prediction from an export folder (ONNX or OpenVINO) through the Ultralytics prediction loop.

`ExportedPredictor` puts an `ExportedDynamicModel` (`dydet.nn.backends.runtime`) behind the stock prediction loop so
that `Results` carry `route` and `score` as with a `.pt` model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from ultralytics.utils import LOGGER

from dydet.cfg import check_args
from dydet.engine.args import drop_dydet_args, pop_routing
from dydet.engine.predictor import RoutedPredictor
from dydet.nn.backends.runtime import ExportedDynamicModel, default_device, load_export
from dydet.routing import RoutingSpec


class ExportedBackend:
    """The part of Ultralytics' `AutoBackend` interface that the prediction loop uses, around an export.

    Attributes:
        model (ExportedDynamicModel): The runtime model (`RoutedPredictor.dynamic_model()` finds it here).
    """

    pt = False
    jit = False
    dynamic = False  # fixed image size: the predictor letterboxes to `imgsz`
    end2end = False
    base_model = False  # no activation maps / embeddings / TTA
    prefetch = False

    def __init__(self, model: ExportedDynamicModel):
        """Wrap a loaded export."""
        self.model, self.format = model, model.format
        self.names, self.stride, self.imgsz = model.names, model.stride, list(model.imgsz)
        self.fp16, self.device, self.channels = model.fp16, model.device, model.channels
        self.batch = None  # any batch size
        self.end2end = bool(getattr(model, "end2end", False))  # NMS-free outputs: the predictor runs no NMS

    def __call__(self, im: torch.Tensor, *args, **kwargs):
        """Run the model at its default routing on a preprocessed batch (Ultralytics' `augment`/`embed` are ignored)."""
        return self.model(im)

    forward = __call__

    def warmup(self, imgsz: tuple = (1, 3, 640, 640), im: torch.Tensor | None = None) -> None:
        """Do nothing: the runtimes need no warm-up pass."""

    def eval(self) -> ExportedBackend:
        """Return self (already inference-only)."""
        return self


class ExportedPredictor(RoutedPredictor):
    """`RoutedPredictor` over a split export: same preprocessing, NMS and `Results` with `route` and `score`."""

    def setup_model(self, model: str | Path | ExportedDynamicModel | None, verbose: bool = True) -> None:
        """Load the export (a directory or an `ExportedDynamicModel`) behind an AutoBackend-like wrapper."""
        model = model if model is not None else self.args.model
        if not isinstance(model, ExportedDynamicModel):
            model = load_export(model, device=default_device(self.args.device, model))
        self.model = ExportedBackend(model)
        self.device = self.model.device


def predict_exported(
    export_dir: str | Path | ExportedDynamicModel,
    source: Any = None,
    routing: RoutingSpec | None = None,
    **predict_kwargs: Any,
) -> list:
    """Predict with a split export (ONNX or OpenVINO) through the Ultralytics prediction loop, routing per image.

    Args:
        export_dir (str | Path | ExportedDynamicModel): The export directory, or an already loaded export.
        source (Any): Image, folder, glob, video, array or tensor, as for `ultralytics.YOLO.predict`.
        routing (RoutingSpec, optional): The routing, already resolved (as `DynamicYOLO.predict` passes it). Without
            it, `threshold=` / `hard_ratio=` / `route=` / `gflops=` / `latency=` among `predict_kwargs` are resolved
            here, once, against the export's calibration; with none of them, the export's own routing is used.
        **predict_kwargs (Any): Ultralytics prediction arguments (conf, iou, batch, device, save, project, ...;
            `stream=True` returns a generator). `imgsz` is fixed by the export.

    Returns:
        (list[Results] | Generator): Results with `.route` and `.score`.

    Examples:
        >>> results = predict_exported("runs/export/final_onnx", "images/", hard_ratio=0.3)
        >>> results[0].route, results[0].score
    """
    stream = predict_kwargs.pop("stream", False)
    model = export_dir if isinstance(export_dir, ExportedDynamicModel) else None
    if model is None:
        model = load_export(export_dir, device=default_device(predict_kwargs.get("device"), export_dir))
    if routing is None:  # called directly, not from `DynamicModel.predict` (which checked and resolved them)
        predict_kwargs = check_args("predict", predict_kwargs)
        precision = model.metadata.get("precision") or ("fp16" if model.fp16 else "fp32")  # int8 exports: "int8"
        routing = pop_routing(model, predict_kwargs, device=model.device, precision=precision)
    drop_dydet_args(predict_kwargs)
    imgsz = predict_kwargs.pop("imgsz", None)
    if imgsz is not None and list(np.broadcast_to(imgsz, 2)) != list(model.imgsz):
        LOGGER.warning(
            f"imgsz={imgsz} ignored: this {model.label} export takes {model.imgsz[0]}x{model.imgsz[1]} images"
        )
    args = {"conf": 0.25, "batch": 1, "save": False, "rect": True, **predict_kwargs, "mode": "predict"}
    predictor = ExportedPredictor(overrides=args)
    predictor.setup_model(model, verbose=False)
    results = predictor(source=source, stream=True, routing=routing or model.default_routing())
    return results if stream else list(results)


__all__ = ["ExportedBackend", "ExportedPredictor", "predict_exported"]
