"""Per-route validation of the R-CNN family: the YOLO family's validator on R-CNN's end-to-end detections."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dydet.models.yolo.val import DynamicValidator


class RCNNValidator(DynamicValidator):
    """`DynamicValidator` for a `DynamicRCNN`.

    The model returns (B, 100, 6) detections per route, which Ultralytics' NMS passes through as an end-to-end
    output (conf and class filter only: no second NMS); the RoI heads' score threshold is set to `conf`; the oracle's
    per-image losses are `DynamicRCNN.per_image_losses` (seeded samplers).
    """

    def init_metrics(self, model: nn.Module) -> None:
        """Initialise the metrics and set the RoI score threshold to `conf`."""
        super().init_metrics(model)
        self._net.roi_heads.score_thresh = float(self.args.conf)

    def route_losses(self, preds: dict[str, Any], batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return every image's own loss through each route (for the oracle routing)."""
        return self._net.per_image_losses(batch)
