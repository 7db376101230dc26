"""The YOLO family of dynamic detectors: model front end and its task classes (train, router training, val, predict)."""

from dydet.models.yolo.model import DynamicYOLO

__all__ = ["DynamicYOLO"]
