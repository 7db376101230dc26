"""Losses of the R-CNN family: stage 1 (both routes' torchvision losses), stage 2 (the router, per-image losses)."""

from __future__ import annotations

import torch

from dydet.utils.loss import RouterObjective


class CascadeLoss:
    """Stage-1 criterion: `w_easy * sum(easy losses) + w_hard * sum(hard losses)`, torchvision's four losses per route.

    Returned as Ultralytics' trainer expects: the loss (not multiplied by the batch size: torchvision's losses are
    batch means, and R-CNN's learning rates are set for them) and a dict of detached per-route items named
    `e_obj_loss e_rpn_loss e_cls_loss e_box_loss h_...`.
    """

    def __init__(self, weights: tuple[float, float] = (1.0, 1.0)):
        """Create the criterion with the (easy, hard) route weights."""
        self.weights = weights

    def __call__(self, losses: dict[str, dict[str, torch.Tensor]]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Combine `{"easy": torchvision loss dict, "hard": ...}` into `(loss, items)`."""
        from dydet.nn.rcnn.model import LOSS_NAMES

        total, items = 0.0, {}
        for (route, route_losses), w in zip(losses.items(), self.weights):
            total = total + w * sum(route_losses.values())
            for key, name in LOSS_NAMES.items():
                items[f"{route[0]}_{name}"] = route_losses[key].detach()
        return total.reshape(1), items


class RCNNRouterLoss(RouterObjective):
    """Stage-2 criterion of the R-CNN family: the router objective on the routes' per-image R-CNN losses.

    `loss_i = s_i * (L1_i - Δ/2) + (1 - s_i) * (L2_i + Δ/2)` with Δ the running median of `L1 - L2` (see
    `dydet.utils.loss.RouterObjective`); `L1`, `L2` come from `RCNNDetectionModel.image_losses`.

    Attributes:
        diffs (RunningMedian): History of `L1 - L2` (saved in checkpoints for an exact resume).
    """

    def __call__(
        self, score: torch.Tensor, l1: torch.Tensor, l2: torch.Tensor, update: bool | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return `(loss, items)`: the mean router loss (differentiable in the scores) and `r_loss delta score hard`."""
        per_image, items = self.per_image_objective(score, l1, l2, update)
        return per_image.mean().reshape(1), items
