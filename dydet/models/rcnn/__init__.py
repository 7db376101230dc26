"""The R-CNN family's task classes (trainers, validator, predictor) behind `DynamicYOLO` and the CLI."""

from dydet.models.rcnn.predict import RCNNPredictor
from dydet.models.rcnn.train import RCNN_TRAIN_DEFAULTS, RCNNRouterTrainer, RCNNTrainer
from dydet.models.rcnn.val import RCNNValidator

__all__ = ["RCNN_TRAIN_DEFAULTS", "RCNNPredictor", "RCNNRouterTrainer", "RCNNTrainer", "RCNNValidator"]
