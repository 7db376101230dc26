"""Stage-2 training: only the router learns, from detached per-image losses of both routes.

The method: docs/METHOD.md, "Training, stage 2: the router".
"""

from __future__ import annotations

import logging

from ultralytics.utils import LOGGER, RANK
from ultralytics.utils.torch_utils import unwrap_model

from dydet.models.yolo.train import DynamicTrainer
from dydet.nn.tasks import DynamicDetectionModel
from dydet.utils.errors import CheckpointError

# Chosen on the embedded demo/bench data (see docs/ROUTER.md): the router is tiny and its inputs are frozen, so a
# constant AdamW lr of 1e-3 converges in a few epochs at ordinary batch sizes; the paper's 1e-5 (batch 1, 2 COCO
# epochs = ~230k steps) would not move it in the few hundred steps a small dataset gives.
ROUTER_DEFAULTS = {"epochs": 8, "lr0": 1e-3, "batch": 32}
# Fixed settings of router training: constant lr, no warmup, and images exactly as inference sees them (no mosaic,
# no augmentation at all). With Ultralytics' augmentation the scores drift towards "hard" until the sigmoid saturates
# and the ranking degrades; with flips alone, the last epoch's router recovers 59 % of the hard route's gain at a
# 50/50 split on the benchmark data instead of 63 % (docs/ROUTER.md: measurements and the likely mechanism).
ROUTER_FIXED = {
    "optimizer": "AdamW",
    "lrf": 1.0,
    "cos_lr": False,
    "warmup_epochs": 0.0,
    "weight_decay": 0.0,
    "mosaic": 0.0,
    "mixup": 0.0,
    "cutmix": 0.0,
    "close_mosaic": 0,
    "scale": 0.0,
    "translate": 0.0,
    "degrees": 0.0,
    "shear": 0.0,
    "perspective": 0.0,
    "hsv_h": 0.0,
    "hsv_s": 0.0,
    "hsv_v": 0.0,
    "copy_paste": 0.0,
    "fliplr": 0.0,
    "flipud": 0.0,
    "bgr": 0.0,
}


class RouterTrainer(DynamicTrainer):
    """Stage-2 trainer: freezes every detector layer (BatchNorm statistics included) and trains the router.

    The loss is `s*(L1 - Δ/2) + (1 - s)*(L2 + Δ/2)` per image on detached per-image losses of both routes, with Δ the
    running median of `L1 - L2` (`dydet.utils.loss.RouterLoss`), at ordinary batch sizes, on un-augmented images
    (`ROUTER_FIXED`: the augmentation arguments of stage 1 do not apply). Logged: `r_loss`, `delta`,
    the mean `score`, and `hard`, the share of images the routing rule (`hard_mask`) sends hard at the model's
    threshold.
    Validation reports both routes and the routed model at a 50/50 split; the best checkpoint is the best router.
    """

    def get_model(self, cfg=None, weights=None, verbose: bool = True) -> DynamicDetectionModel:
        """Load the stage-1 model, mark it as in stage 2 and freeze every layer but the router."""
        source = weights if weights is not None else cfg
        if weights is None or getattr(weights, "stage", 0) < 1:
            raise CheckpointError(
                f"stage 2 needs a stage-1 dydet checkpoint (model=.../weights/best.pt from 'dydet train stage=1'), "
                f"got {getattr(source, 'yaml', {}).get('yaml_file', source) if source is not None else 'none'}"
            )
        model = super().get_model(cfg=cfg, weights=weights, verbose=False)
        model.stage = 2
        model.threshold, model.calibration = weights.threshold, None
        self.args.freeze = len(model.model)  # the trainer freezes `model.<i>.` for every layer: all but the router
        if verbose and RANK in {-1, 0}:
            n = sum(p.numel() for p in model.router.parameters())
            LOGGER.info(f"Router training: {n:,} trainable router parameters, detector frozen (BatchNorm in eval)")
        return model

    def _setup_train(self):
        """Set up as the stock trainer does, with one summary line instead of a `Freezing layer` line per tensor."""
        quiet = FreezeLogSummary()
        LOGGER.addFilter(quiet)
        try:
            super()._setup_train()
        finally:
            LOGGER.removeFilter(quiet)
        if RANK in {-1, 0}:
            LOGGER.info(f"Froze {quiet.count} detector parameter tensors (every layer but the router)")
        unwrap_model(self.model).criterion = None  # built lazily from the model's stage: RouterLoss


class FreezeLogSummary(logging.Filter):
    """Logging filter that drops the stock trainer's per-tensor `Freezing layer '...'` lines and counts them."""

    def __init__(self) -> None:
        """Start counting at zero."""
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """Return False (drop) for a `Freezing layer` line, True for anything else."""
        if str(record.msg).startswith("Freezing layer '"):
            self.count += 1
            return False
        return True
