"""The R-CNN family: Dy-Faster R-CNN (`RCNNDetectionModel`) and static Faster R-CNN (`StaticRCNN`) on torchvision."""

from dydet.nn.rcnn.config import is_rcnn_cfg, load_rcnn_yaml
from dydet.nn.rcnn.model import RCNNDetectionModel, StaticRCNN

__all__ = ["RCNNDetectionModel", "StaticRCNN", "is_rcnn_cfg", "load_rcnn_yaml"]
