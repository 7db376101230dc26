"""Stage-2 training: only the router learns, from detached per-image losses of both routes.

The method: docs/METHOD.md, "Training, stage 2: the router".
"""

from __future__ import annotations

from dydet.cfg.training import ROUTER_DEFAULTS, ROUTER_FIXED
from dydet.engine.trainer import RouterStageTrainer
from dydet.models.yolo.train import DynamicTrainer
from dydet.nn.tasks import DynamicDetectionModel

__all__ = ["ROUTER_DEFAULTS", "ROUTER_FIXED", "RouterTrainer"]


class RouterTrainer(RouterStageTrainer, DynamicTrainer):
    """Stage-2 trainer: freezes every detector layer (BatchNorm statistics included) and trains the router.

    The loss is `s*(L1 - Δ/2) + (1 - s)*(L2 + Δ/2)` per image on detached per-image losses of both routes, with Δ the
    running median of `L1 - L2` (`dydet.utils.loss.RouterLoss`), at ordinary batch sizes, on un-augmented images
    (`ROUTER_FIXED`: the augmentation arguments of stage 1 do not apply). Logged: `r_loss`, `delta`,
    the mean `score`, and `hard`, the share of images the routing rule (`hard_mask`) sends hard at the model's
    threshold.
    Validation reports both routes and the routed model at a 50/50 split; the best checkpoint is the best router.
    """

    def freeze_detector(self, model: DynamicDetectionModel) -> None:
        """Freeze every layer but the router: the trainer freezes `model.<i>.` for every layer index."""
        self.args.freeze = len(model.model)
