"""Per-route validation of the R-CNN family: the routed validator on R-CNN's end-to-end detections."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dydet.engine.validator import RoutedValidator


class RCNNValidator(RoutedValidator):
    """`RoutedValidator` for a `RCNNDetectionModel`.

    The model returns (B, 100, 6) detections per route, which Ultralytics' NMS passes through as an end-to-end
    output (conf and class filter only: no second NMS); the RoI heads' score threshold is set to `conf`; the oracle's
    per-image losses are `RCNNDetectionModel.per_image_losses` (seeded samplers).
    """

    def init_metrics(self, model: nn.Module) -> None:
        """Initialise the metrics and set the RoI score threshold to `conf`."""
        super().init_metrics(model)
        self._net.roi_heads.score_thresh = float(self.args.conf)

    def route_losses(self, preds: dict[str, Any], batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return every image's own loss through each route (for the oracle routing)."""
        return self._net.per_image_losses(batch)
