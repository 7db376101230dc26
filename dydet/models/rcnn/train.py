"""Training of the R-CNN family: stage 1 (both routes' torchvision losses) and stage 2 (the router).

The YOLO family's trainers with what R-CNN needs instead: torchvision's loss dict, SGD at R-CNN learning rates with
`nbs = batch` (torchvision's losses are batch means), no mosaic / mixup / HSV / affine augmentation, `pretrained=` a
torchvision Faster R-CNN or ImageNet ResNet state dict, and stage-2 freezing by module rather than by layer index.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ultralytics.utils import DEFAULT_CFG, LOGGER, RANK
from ultralytics.utils.torch_utils import unwrap_model

from dydet.models.rcnn.val import RCNNValidator
from dydet.models.yolo.train import DynamicTrainer
from dydet.models.yolo.train_router import RouterTrainer
from dydet.nn.rcnn import DynamicRCNN
from dydet.utils.errors import CheckpointError

# Defaults of `DynamicYOLO.train` for this family (a value the user gives wins): SGD as mmdet/torchvision train
# Faster R-CNN (0.02 at batch 16, here for batch 8), and no augmentation beyond flips.
RCNN_TRAIN_DEFAULTS = {
    "optimizer": "SGD",
    "lr0": 0.01,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "warmup_bias_lr": 0.0,
    "mosaic": 0.0,
    "mixup": 0.0,
    "cutmix": 0.0,
    "close_mosaic": 0,
    "hsv_h": 0.0,
    "hsv_s": 0.0,
    "hsv_v": 0.0,
    "degrees": 0.0,
    "translate": 0.0,
    "scale": 0.0,
    "shear": 0.0,
    "perspective": 0.0,
}


class RCNNTrainer(DynamicTrainer):
    """Stage-1 trainer of a `DynamicRCNN`: `w_easy * L_easy + w_hard * L_hard`, torchvision's four losses per route.

    Losses are logged per route (`e_obj_loss e_rpn_loss e_cls_loss e_box_loss h_...`); validation is the per-route
    validator of the YOLO family with R-CNN's detections. `nbs` is the batch size (no loss scaling by batch).
    """

    def __init__(self, cfg=DEFAULT_CFG, overrides: dict | None = None, _callbacks: dict | None = None) -> None:
        """Create the trainer; `nbs` follows the batch size (R-CNN's losses are batch means)."""
        overrides = dict(overrides or {})
        if isinstance(overrides.get("batch"), int) and overrides["batch"] > 0:
            overrides["nbs"] = overrides["batch"]
        super().__init__(cfg, overrides, _callbacks)

    def get_model(self, cfg=None, weights=None, verbose: bool = True) -> DynamicRCNN:
        """Build the model for this dataset and load `weights` (a dydet R-CNN model or torchvision weights)."""
        model = DynamicRCNN(cfg or self.args.model, nc=self.data["nc"], verbose=False)
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
        """Return the per-route validator."""
        from copy import copy

        self.loss_names = unwrap_model(self.model).loss_names()
        return RCNNValidator(self.test_loader, save_dir=self.save_dir, args=copy(self.args), _callbacks=self.callbacks)


class RCNNRouterTrainer(RouterTrainer, RCNNTrainer):
    """Stage-2 trainer of a `DynamicRCNN`: the router alone, on detached per-image losses of both routes.

    Per-image losses run the backbones and FPN batched and the RPN / RoI heads once per image with reseeded samplers
    (`DynamicRCNN.image_losses`); everything but the router is frozen, BatchNorm in eval.
    """

    def get_model(self, cfg=None, weights=None, verbose: bool = True) -> DynamicRCNN:
        """Load the stage-1 model, mark it as in stage 2; freezing happens in `_setup_train`."""
        if weights is None or getattr(weights, "stage", 0) < 1:
            raise CheckpointError(
                "stage 2 needs a stage-1 dydet checkpoint (model=.../weights/best.pt from 'dydet train stage=1')"
            )
        model = RCNNTrainer.get_model(self, cfg=cfg, weights=weights, verbose=False)
        model.stage = 2
        model.threshold, model.calibration = weights.threshold, None
        return model

    def _setup_train(self):
        """Set up as the YOLO router trainer does, then freeze every parameter outside the router."""
        super()._setup_train()
        model = unwrap_model(self.model)
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("router."))
        if RANK in {-1, 0}:
            n = sum(p.numel() for p in model.router.parameters())
            LOGGER.info(f"Router training: {n:,} trainable router parameters, detector frozen (BatchNorm in eval)")

    def _model_train(self):
        """Train mode for the router only; every other part stays in eval (frozen BatchNorm statistics)."""
        self.model.train()
        for name, child in unwrap_model(self.model).named_children():
            if name != "router":
                child.eval()
