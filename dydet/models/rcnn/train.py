"""Training of the R-CNN family: stage 1 (both routes' torchvision losses) and stage 2 (the router).

The family-neutral trainers (`dydet.engine.trainer`) with what R-CNN needs: torchvision's loss dict, SGD at R-CNN
learning rates with `nbs = batch` (torchvision's losses are batch means), no mosaic / mixup / HSV / affine
augmentation, `pretrained=` a torchvision Faster R-CNN or ImageNet ResNet state dict, and stage-2 freezing by module
rather than by layer index.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ultralytics.utils import DEFAULT_CFG, RANK
from ultralytics.utils.torch_utils import unwrap_model

from dydet.cfg.training import RCNN_TRAIN_DEFAULTS
from dydet.engine.trainer import RoutedTrainer, RouterStageTrainer
from dydet.models.rcnn.val import RCNNValidator
from dydet.nn.rcnn import RCNNDetectionModel

__all__ = ["RCNN_TRAIN_DEFAULTS", "RCNNRouterTrainer", "RCNNTrainer"]


class RCNNTrainer(RoutedTrainer):
    """Stage-1 trainer of a `RCNNDetectionModel`: `w_easy * L_easy + w_hard * L_hard`, torchvision's 4 losses per route.

    Losses are logged per route (`e_obj_loss e_rpn_loss e_cls_loss e_box_loss h_...`); validation is the per-route
    validator with R-CNN's detections. `nbs` is the batch size (no loss scaling by batch).
    """

    validator_class = RCNNValidator

    def __init__(self, cfg=DEFAULT_CFG, overrides: dict | None = None, _callbacks: dict | None = None) -> None:
        """Create the trainer; `nbs` follows the batch size (R-CNN's losses are batch means)."""
        overrides = dict(overrides or {})
        if isinstance(overrides.get("batch"), int) and overrides["batch"] > 0:
            overrides["nbs"] = overrides["batch"]
        super().__init__(cfg, overrides, _callbacks)

    def get_model(self, cfg=None, weights=None, verbose: bool = True) -> RCNNDetectionModel:
        """Build the model for this dataset and load `weights` (a dydet R-CNN model or torchvision weights)."""
        model = RCNNDetectionModel(cfg or self.args.model, nc=self.data["nc"], verbose=False)
        model.names = self.data["names"]
        if weights is not None:
            model.load(weights, verbose=verbose and RANK in {-1, 0})
        model.stage = 1
        return model

    def setup_model(self) -> dict[str, Any] | None:
        """Build the model as the YOLO family does; `pretrained=` is a torchvision weights file for this family."""
        pretrained = self.args.pretrained
        if not isinstance(pretrained, (str, Path)) or isinstance(pretrained, bool) or self.resume:
            return super().setup_model()
        self.args.pretrained = True
        try:
            ckpt = super().setup_model()
        finally:
            self.args.pretrained = pretrained
        unwrap_model(self.model).load(str(pretrained), verbose=RANK in {-1, 0})
        return ckpt

    def get_validator(self) -> RCNNValidator:
        """Return the per-route validator, with the loss names of this model's losses."""
        self.loss_names = unwrap_model(self.model).loss_names()
        return super().get_validator()


class RCNNRouterTrainer(RouterStageTrainer, RCNNTrainer):
    """Stage-2 trainer of a `RCNNDetectionModel`: the router alone, on detached per-image losses of both routes.

    Per-image losses run the backbones and FPN batched and the RPN / RoI heads once per image with reseeded samplers
    (`RCNNDetectionModel.image_losses`); everything but the router is frozen, BatchNorm in eval.
    """

    def freeze_detector(self, model: RCNNDetectionModel) -> None:
        """Do nothing here: `_setup_train` freezes by module, after the stock setup (which unfreezes by layer index)."""

    def _setup_train(self):
        """Set up as every router trainer does, then freeze every parameter outside the router."""
        super()._setup_train()
        model = unwrap_model(self.model)
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("router."))

    def _model_train(self):
        """Train mode for the router only; every other part stays in eval (frozen BatchNorm statistics)."""
        self.model.train()
        for name, child in unwrap_model(self.model).named_children():
            if name != "router":
                child.eval()
