"""Per-route validation of the YOLO families: the routed validator, with YOLO's per-image losses for the oracle."""

from __future__ import annotations

from typing import Any

import torch
from ultralytics.cfg import get_cfg

from dydet.engine.validator import RoutedValidator
from dydet.utils.loss import RouterLoss


class DynamicValidator(RoutedValidator):
    """`RoutedValidator` for a `DynamicDetectionModel` (YOLOv8/11, YOLOv7, YOLO26)."""

    def route_losses(self, preds: dict[str, Any], batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image detection losses of both routes (for the oracle), with a criterion built on first use."""
        if self._route_loss is None:
            if not hasattr(self._net.args, "box"):  # a loaded checkpoint keeps its args as a plain dict
                self._net.args = get_cfg(overrides={k: v for k, v in dict(self._net.args).items() if k != "cfg"})
            self._route_loss = RouterLoss(self._net)
        return self._route_loss.route_losses(preds, batch)
