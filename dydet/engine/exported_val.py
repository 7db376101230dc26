"""Validation of an export folder (ONNX or OpenVINO) as of a `.pt`: routed `(B)`, each route `(E)`/`(H)`, `(R)`.

`ExportedValidator` runs the export's router graph once and both head graphs on every validation batch, letterboxed to
the export's fixed square image size, and scores the router on each image as `predict` preprocesses it
(`dydet.utils.preprocess`), as calibration did; so `dydet val model=<export folder>` checks an export against the
`.pt` it came from.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from dydet.engine.validator import RoutedValidator
from dydet.nn.backends.runtime import ExportedDynamicModel
from dydet.utils.errors import ArgumentError
from dydet.utils.preprocess import preprocess_images, read_image


class ExportedBothRoutes(nn.Module):
    """A module around an export that answers `model(x)` with both routes' outputs and the router scores.

    It has no parameters; Ultralytics' validator puts it behind `AutoBackend` like a PyTorch model.
    """

    def __init__(self, runner: ExportedDynamicModel) -> None:
        """Wrap a loaded export."""
        super().__init__()
        self.runner = runner
        self.names, self.yaml = runner.names, {"channels": runner.channels}
        self.stride = torch.tensor([float(s) for s in runner.strides])
        self.end2end, self.threshold, self.calibration = runner.end2end, runner.threshold, runner.calibration
        self.stage = 2 if runner.calibration else 1

    def fuse(self, verbose: bool = True) -> ExportedBothRoutes:
        """Return self: the graphs are already fused."""
        return self

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Return `{"easy": y, "hard": y, "score": (B,)}` for a batch at the export's image size."""
        state, score = self.runner.run_trunk(x.float())
        out = {r: self.runner.finish_routed(state, self.runner.run_tail(r, state)).float() for r in ("easy", "hard")}
        return {**out, "score": torch.from_numpy(np.asarray(score))}

    def scores(self, files: list[str], batch: int = 16) -> list[float]:
        """Return the router score of each image file, preprocessed as `predict` does."""
        scores: list[float] = []
        for i in range(0, len(files), batch):
            x = preprocess_images(
                [read_image(f) for f in files[i : i + batch]], self.runner.imgsz, "cpu", torch.float32
            )
            scores.extend(float(s) for s in self.runner.run_trunk(x)[1])
        return scores


class ExportedValidator(RoutedValidator):
    """`RoutedValidator` over a split export: fixed square image size, no rectangular batches, no trade-off table."""

    def get_model(self, model, trainer=None):
        """Wrap the export; set `imgsz` to the export's and turn rectangular batches off (the graphs' size is fixed)."""
        if not isinstance(model, ExportedDynamicModel):
            raise ArgumentError(f"expected a dydet export folder, got {type(model).__name__}")
        h, w = model.imgsz
        if h != w:
            raise ArgumentError(f"this {model.label} export takes {h}x{w} images; 'dydet val' validates square ones")
        self.args.imgsz, self.args.rect = h, False
        wrapped = ExportedBothRoutes(model)
        self.metrics.stage = wrapped.stage
        self._set_routing(wrapped)
        self._net, self._route_loss = wrapped, None
        return wrapped

    def update_metrics(self, preds: dict[str, Any], batch: dict[str, Any]) -> None:
        """Update both routes' metrics; score the router on the images as `predict` letterboxes them."""
        self.metrics.scores.extend(self._net.scores(batch["im_file"]))
        seen = self.seen
        for route in ("easy", "hard"):
            self.seen = seen
            with self._as_route(route):
                super(RoutedValidator, self).update_metrics(preds[route], batch)


__all__ = ["ExportedBothRoutes", "ExportedValidator"]
