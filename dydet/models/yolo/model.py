"""`DynamicYOLO`: the front end of the YOLO families (YOLOv8/11, YOLOv7, YOLO26), as `ultralytics.YOLO` is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dydet.engine.model import DynamicModel
from dydet.models.rcnn.model import DynamicRCNN
from dydet.models.yolo.predict import DynamicPredictor
from dydet.models.yolo.train import DynamicTrainer
from dydet.models.yolo.train_router import RouterTrainer
from dydet.models.yolo.val import DynamicValidator
from dydet.nn.rcnn import RCNNDetectionModel, is_rcnn_cfg
from dydet.nn.tasks import DynamicDetectionModel


class DynamicYOLO(DynamicModel):
    """A DynamicDet model: build from a dydet YAML or load a dydet checkpoint, then train / val / predict / export.

    An R-CNN model YAML or checkpoint makes a `DynamicRCNN` instead, as `ultralytics.YOLO("rtdetr-l.pt")` makes an
    `RTDETR`, so `DynamicYOLO` opens any dydet model.

    Examples:
        >>> model = DynamicYOLO("dy-yolo11n.yaml")  # or "dy-faster-rcnn-r18.yaml": a DynamicRCNN
        >>> model.train(epochs=10)  # embedded demo dataset when `data` is not given
        >>> results = model.predict("image.jpg", hard_ratio=0.3)
        >>> results[0].route, results[0].score
    """

    def _new(self, cfg: str, task: str | None = None, verbose: bool = False) -> None:
        """Build a new model from a dydet YAML; an R-CNN YAML makes this object a `DynamicRCNN`."""
        if is_rcnn_cfg(cfg):
            self.__class__ = DynamicRCNN  # before building: its `task_map` names the model class
        DynamicModel._new(self, cfg, task, verbose)

    def _load(self, weights: str | Path, task: str | None = None) -> None:
        """Load a dydet checkpoint or export folder; an R-CNN checkpoint makes this object a `DynamicRCNN`."""
        super()._load(weights, task)
        if isinstance(self.model, RCNNDetectionModel):
            self.__class__ = DynamicRCNN

    @property
    def task_map(self) -> dict[str, dict[str, Any]]:
        """Map the detect task to the YOLO family's model, trainers, validator and predictor."""
        return {
            "detect": {
                "model": DynamicDetectionModel,
                "trainer": DynamicTrainer,
                "router_trainer": RouterTrainer,
                "validator": DynamicValidator,
                "predictor": DynamicPredictor,
            }
        }
