"""The model families' front ends: `DynamicYOLO` (YOLO families) and `DynamicRCNN` (R-CNN)."""

from dydet.models.rcnn.model import DynamicRCNN
from dydet.models.yolo.model import DynamicYOLO

__all__ = ["DynamicRCNN", "DynamicYOLO"]
