"""`DynamicRCNN`: the front end of the R-CNN family (Dy-Faster R-CNN), as Ultralytics' `RTDETR` is of RT-DETR."""

from __future__ import annotations

from typing import Any

from dydet.engine.model import DynamicModel
from dydet.models.rcnn.predict import RCNNPredictor
from dydet.models.rcnn.train import RCNNRouterTrainer, RCNNTrainer
from dydet.models.rcnn.val import RCNNValidator
from dydet.nn.rcnn import RCNNDetectionModel
from dydet.utils.errors import ArgumentError


class DynamicRCNN(DynamicModel):
    """A Dy-Faster R-CNN model: build from an R-CNN dydet YAML or load its checkpoint, then train / val / predict.

    `DynamicYOLO` opens these files too and becomes a `DynamicRCNN`.

    Examples:
        >>> model = DynamicRCNN("dy-faster-rcnn-r18.yaml")
        >>> model.train(pretrained="resnet18.pth", epochs=12)  # torchvision ImageNet ResNet or Faster R-CNN weights
    """

    def __init__(
        self, model: str = "dy-faster-rcnn-r50.yaml", verbose: bool = False, trust_checkpoint: bool = False
    ) -> None:
        """Create a model from an R-CNN dydet YAML (new, random weights) or a `.pt` dydet R-CNN checkpoint."""
        super().__init__(model, verbose=verbose, trust_checkpoint=trust_checkpoint)

    def tune(self, use_ray: bool = False, iterations: int = 10, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Refuse: hyperparameter tuning supports the YOLO family only."""
        raise ArgumentError("tune supports the YOLO family only; train R-CNN models with 'dydet train'")

    @property
    def task_map(self) -> dict[str, dict[str, Any]]:
        """Map the detect task to the R-CNN family's model, trainers, validator and predictor."""
        return {
            "detect": {
                "model": RCNNDetectionModel,
                "trainer": RCNNTrainer,
                "router_trainer": RCNNRouterTrainer,
                "validator": RCNNValidator,
                "predictor": RCNNPredictor,
            }
        }
