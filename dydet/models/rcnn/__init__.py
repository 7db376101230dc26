"""The R-CNN family's front end (`DynamicRCNN`) and task classes (trainers, validator, predictor)."""

from dydet.models.rcnn.model import DynamicRCNN
from dydet.models.rcnn.predict import RCNNPredictor
from dydet.models.rcnn.train import RCNN_TRAIN_DEFAULTS, RCNNRouterTrainer, RCNNTrainer
from dydet.models.rcnn.val import RCNNValidator

__all__ = ["RCNN_TRAIN_DEFAULTS", "DynamicRCNN", "RCNNPredictor", "RCNNRouterTrainer", "RCNNTrainer", "RCNNValidator"]
