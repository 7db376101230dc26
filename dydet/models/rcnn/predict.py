"""Prediction with per-image routing for the R-CNN family."""

from __future__ import annotations

from dydet.engine.predictor import RoutedPredictor


class RCNNPredictor(RoutedPredictor):
    """`RoutedPredictor` for a `RCNNDetectionModel`: end-to-end detections (no second NMS), RoI threshold `conf`."""

    def setup_model(self, model, verbose: bool = True) -> None:
        """Set up the model, then set the RoI heads' score threshold to `conf`."""
        super().setup_model(model, verbose)
        self.dynamic_model().roi_heads.score_thresh = float(self.args.conf)
