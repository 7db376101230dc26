"""The YOLO family: the dynamic and the static (YOLOv7) model front ends and their task classes."""

from dydet.models.yolo.model import DynamicYOLO
from dydet.models.yolo.static import StaticYOLO

__all__ = ["DynamicYOLO", "StaticYOLO"]
