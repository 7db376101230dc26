"""Prediction with per-image routing for the YOLO families."""

from __future__ import annotations

from dydet.engine.predictor import RoutedPredictor


class DynamicPredictor(RoutedPredictor):
    """`RoutedPredictor` for a `DynamicDetectionModel`: Ultralytics' NMS (or none for an end-to-end head)."""
