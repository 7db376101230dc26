"""The R-CNN family: Dy-Faster R-CNN (`DynamicRCNN`) and the static Faster R-CNN (`StaticRCNN`) on torchvision parts."""

from dydet.nn.rcnn.config import is_rcnn_cfg, load_rcnn_yaml
from dydet.nn.rcnn.model import DynamicRCNN, StaticRCNN

__all__ = ["DynamicRCNN", "StaticRCNN", "is_rcnn_cfg", "load_rcnn_yaml"]
