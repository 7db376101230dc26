"""Loss functions for DynamicDet: per-image detection losses, the stage-1 dual-route loss and the stage-2 router loss.

All criteria are built like Ultralytics' ``v8DetectionLoss``: ``Criterion(model)`` where ``model`` carries ``.args``
(hyperparameters with the ``box``/``cls``/``dfl`` gains) and ``model.model[-1]`` is a ``Detect`` head. Both dydet heads
share ``nc``, ``reg_max`` and strides, so one criterion instance serves both routes.

Predictions for one route are what a stock ``Detect`` returns: the training dict
``{"boxes": (B, 4*reg_max, A), "scores": (B, nc, A), "feats": [P3, P4, P5]}`` or the eval tuple ``(decoded, dict)``.
The dual model returns ``{"easy": route_preds, "hard": route_preds, "score": (B,) router scores}``.

End-to-end heads (YOLO26: a one-to-one and a one-to-many branch per head, training output
``{"one2many": route_preds, "one2one": route_preds}``) are trained with Ultralytics' ``E2ELoss`` per route
(``DualE2ELoss``), and their per-image losses come from ``PerImageE2ELoss``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from ultralytics.utils.loss import E2ELoss, v8DetectionLoss
from ultralytics.utils.metrics import bbox_iou
from ultralytics.utils.tal import bbox2dist, make_anchors

from dydet.routing import DEFAULT_THRESHOLD, ROUTES, hard_mask
from dydet.utils.distributed import gather_cat


class Assignment(NamedTuple):
    """Task-aligned assignment of one batch, as computed inside ``v8DetectionLoss``.

    Attributes:
        pred_distri (torch.Tensor): Raw box-distribution predictions, (B, A, 4*reg_max).
        pred_scores (torch.Tensor): Class logits, (B, A, nc).
        pred_bboxes (torch.Tensor): Decoded xyxy boxes in grid units, (B, A, 4).
        anchor_points (torch.Tensor): Anchor centres in grid units, (A, 2).
        stride_tensor (torch.Tensor): Stride of each anchor, (A, 1).
        imgsz (torch.Tensor): Input (h, w) in pixels.
        target_bboxes (torch.Tensor): Assigned xyxy targets in grid units, (B, A, 4).
        target_scores (torch.Tensor): Soft class targets, (B, A, nc).
        fg_mask (torch.Tensor): Foreground anchors, (B, A) bool.

    """

    pred_distri: torch.Tensor
    pred_scores: torch.Tensor
    pred_bboxes: torch.Tensor
    anchor_points: torch.Tensor
    stride_tensor: torch.Tensor
    imgsz: torch.Tensor
    target_bboxes: torch.Tensor
    target_scores: torch.Tensor
    fg_mask: torch.Tensor


def route_outputs(preds: Any) -> dict[str, Any]:
    """Return the dual model's route dict, unwrapping a top-level ``(inference, dict)`` tuple if present.

    Args:
        preds (dict | tuple): ``{"easy": ..., "hard": ..., "score": ...}``, or a tuple whose last item is that dict.

    Returns:
        (dict): The route dict.

    """
    if isinstance(preds, (tuple, list)) and isinstance(preds[-1], dict) and "easy" in preds[-1]:
        return preds[-1]
    return preds


class PerImageDetectionLoss(v8DetectionLoss):
    """``v8DetectionLoss`` that also reduces the loss per image, in one vectorised pass over the batch.

    The stock loss divides every term by one batch-wide ``target_scores.sum()``, so its value is not a sum of
    per-image losses. ``per_image`` keeps the stock assignment (same assigner, same targets) and divides each image's
    terms by that image's own normaliser, which makes row ``i`` equal the stock loss of image ``i`` in a batch of one.
    """

    def assign(self, preds: dict[str, Any] | tuple, batch: dict[str, torch.Tensor]) -> Assignment:
        """Build targets, decode boxes and run the task-aligned assigner exactly as the stock loss does.

        Args:
            preds (dict | tuple): One route's predictions (training dict or eval tuple).
            batch (dict): Batch with ``batch_idx``, ``cls`` and normalised xywh ``bboxes``.

        Returns:
            (Assignment): Predictions and assigned targets for the whole batch.

        """
        # Mirrors the first half of v8DetectionLoss.get_assigned_targets_and_loss, which has no hook after the
        # assigner; tests pin the result against the stock loss.
        preds = self.parse_output(preds)
        pred_distri = preds["boxes"].permute(0, 2, 1).contiguous()
        pred_scores = preds["scores"].permute(0, 2, 1).contiguous()
        anchor_points, stride_tensor = make_anchors(preds["feats"], self.stride, 0.5)

        dtype = pred_scores.dtype
        batch_size = pred_scores.shape[0]
        imgsz = torch.tensor(preds["feats"][0].shape[2:], device=self.device, dtype=dtype) * self.stride[0]

        targets = torch.cat((batch["batch_idx"].view(-1, 1), batch["cls"].view(-1, 1), batch["bboxes"]), 1)
        targets = self.preprocess(targets.to(self.device), batch_size, scale_tensor=imgsz[[1, 0, 1, 0]])
        gt_labels, gt_bboxes = targets.split((1, 4), 2)
        mask_gt = gt_bboxes.sum(2, keepdim=True).gt_(0.0)

        pred_bboxes = self.bbox_decode(anchor_points, pred_distri)
        _, target_bboxes, target_scores, fg_mask, _ = self.assigner(
            pred_scores.detach().sigmoid(),
            (pred_bboxes.detach() * stride_tensor).type(gt_bboxes.dtype),
            anchor_points * stride_tensor,
            gt_labels,
            gt_bboxes,
            mask_gt,
        )
        return Assignment(
            pred_distri,
            pred_scores,
            pred_bboxes,
            anchor_points,
            stride_tensor,
            imgsz,
            target_bboxes / stride_tensor,
            target_scores,
            fg_mask,
        )

    def per_image(self, preds: dict[str, Any] | tuple, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Compute the gain-scaled (box, cls, dfl) loss of every image in the batch.

        Row ``i`` equals ``v8DetectionLoss(model).loss(preds_i, batch_i)[0]`` for image ``i`` alone (batch size 1).
        The result keeps the autograd graph; detach it where the loss must not train the detector.

        Args:
            preds (dict | tuple): One route's predictions (training dict or eval tuple).
            batch (dict): Batch with ``batch_idx``, ``cls`` and normalised xywh ``bboxes``.

        Returns:
            (torch.Tensor): Per-image losses, shape (B, 3): box, cls, dfl (L1 when ``reg_max == 1``).

        """
        a = self.assign(preds, batch)
        batch_size = a.pred_scores.shape[0]
        norm = a.target_scores.sum((1, 2)).clamp(min=1)  # each image's own target_scores_sum

        bce = self.bce(a.pred_scores, a.target_scores.to(a.pred_scores.dtype))  # (B, A, nc)
        if self.class_weights is not None:
            bce = bce * self.class_weights
        loss_cls = bce.sum((1, 2)) / norm

        box_terms, dist_terms = self._foreground_terms(a)  # (n_fg,) each
        img = a.fg_mask.nonzero(as_tuple=True)[0]
        zeros = box_terms.new_zeros(batch_size)
        loss_box = zeros.index_add(0, img, box_terms) / norm
        loss_dist = zeros.index_add(0, img, dist_terms) / norm

        gains = torch.tensor([self.hyp.box, self.hyp.cls, self.hyp.dfl], device=loss_cls.device, dtype=loss_cls.dtype)
        return torch.stack((loss_box, loss_cls.to(loss_box.dtype), loss_dist), 1) * gains

    def _foreground_terms(self, a: Assignment) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the un-normalised per-anchor box (CIoU) and DFL/L1 terms of every foreground anchor.

        These are the summands of ``BboxLoss.forward`` before its ``.sum() / target_scores_sum``.

        Args:
            a (Assignment): Assignment from ``assign``.

        Returns:
            (tuple[torch.Tensor, torch.Tensor]): Box and distribution terms, each of shape (n_fg,), in the row-major
                order of ``fg_mask.nonzero()``.

        """
        b, i = a.fg_mask.nonzero(as_tuple=True)
        weight = a.target_scores[b, i].sum(-1, keepdim=True)  # (n, 1)
        target = a.target_bboxes[b, i]
        iou = bbox_iou(a.pred_bboxes[b, i], target, xywh=False, CIoU=True)
        box = ((1.0 - iou) * weight).squeeze(-1)

        anchors = a.anchor_points[i]
        dfl_loss = self.bbox_loss.dfl_loss
        if dfl_loss is not None:
            target_ltrb = bbox2dist(anchors, target, dfl_loss.reg_max - 1)
            dist = dfl_loss(a.pred_distri[b, i].view(-1, dfl_loss.reg_max), target_ltrb) * weight
        else:  # reg_max == 1: L1 on ltrb distances normalised by image size, as in BboxLoss
            stride = a.stride_tensor[i]
            scale = torch.stack((a.imgsz[1], a.imgsz[0], a.imgsz[1], a.imgsz[0]))
            target_ltrb = bbox2dist(anchors, target) * stride / scale
            pred_ltrb = a.pred_distri[b, i] * stride / scale
            dist = F.l1_loss(pred_ltrb, target_ltrb, reduction="none").mean(-1, keepdim=True) * weight
        return box, dist.squeeze(-1)


ROUTE_ITEMS = ("box", "cls", "dfl")  # the terms a stock criterion logs; YOLO26's third is its L1 term


def both_routes(
    route_loss: Callable[[Any, dict[str, torch.Tensor]], tuple[torch.Tensor, Any]],
    preds: Any,
    batch: dict[str, torch.Tensor],
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Apply a one-route criterion to the easy and the hard route: the stage-1 loss of both dual criteria.

    Args:
        route_loss (Callable): The stock criterion's ``__call__`` (returns the loss times batch size and its items).
        preds (dict | tuple): ``{"easy": ..., "hard": ..., ...}``.
        batch (dict): Batch with ``batch_idx``, ``cls`` and normalised xywh ``bboxes``.

    Returns:
        loss (torch.Tensor): Shape (6,): easy then hard terms.
        items (dict[str, torch.Tensor]): ``e_box_loss ... h_dfl_loss``, each route's stock items renamed.
    """
    routes = route_outputs(preds)
    losses, items = [], {}
    for route in ROUTES:
        loss, route_items = route_loss(routes[route], batch)
        losses.append(loss)
        for name, value in zip(ROUTE_ITEMS, route_items.values()):
            items[f"{route[0]}_{name}_loss"] = value
    return torch.cat(losses), items


class DualDetectionLoss(PerImageDetectionLoss):
    """Stage-1 criterion: the stock detection loss of the easy route plus that of the hard route, equal weights.

    ``__call__`` follows the Ultralytics criterion contract: ``loss.sum()`` is ``(L_easy + L_hard) * batch_size``
    (each ``L`` the stock gain-scaled box+cls+dfl batch loss) and the items dict holds detached per-route terms,
    named ``e_box_loss, e_cls_loss, e_dfl_loss, h_box_loss, h_cls_loss, h_dfl_loss`` (``*_dfl_loss`` is the L1 term
    when ``reg_max == 1``): ``*_loss`` names, as Ultralytics' own, so that its `plot_results` draws them.
    """

    def __call__(self, preds: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Compute the dual-route loss.

        Args:
            preds (dict | tuple): ``{"easy": ..., "hard": ..., ...}`` (route values as training dicts or eval tuples).
            batch (dict): Batch with ``batch_idx``, ``cls`` and normalised xywh ``bboxes``.

        Returns:
            loss (torch.Tensor): Shape (6,): easy (box, cls, dfl) then hard (box, cls, dfl), each times batch size.
            items (dict[str, torch.Tensor]): Detached scalar terms (not times batch size), as the stock loss items.

        """
        return both_routes(super().__call__, preds, batch)  # stock v8DetectionLoss path per route


class PerImageE2ELoss(E2ELoss):
    """Ultralytics' ``E2ELoss`` (YOLO26) whose two branch criteria also reduce the loss per image.

    ``__call__`` and ``update`` are the stock ones: ``o2m * L_one2many + o2o * L_one2one``, the one-to-many weight
    decaying from 0.8 to 0.1 over the training epochs (one ``update`` per epoch, called by the trainer). ``per_image``
    gives the same weighted sum per image (row ``i`` equals the stock loss of image ``i`` in a batch of one, at the
    current weights); on a fused model, whose heads keep only the branch inference reads, it is that branch's loss.
    """

    def __init__(self, model: torch.nn.Module):
        """Build both branch criteria as ``E2ELoss`` does (top-10 one-to-many, top-7/top-1 one-to-one assignment)."""
        super().__init__(model, loss_fn=PerImageDetectionLoss)

    def of_branch(self, branch: str) -> PerImageE2ELoss:
        """Weigh one branch only (`one2many`: what NMS inference reads; `one2one`: NMS-free inference); return self."""
        if branch not in {"one2many", "one2one"}:
            raise ValueError(f"branch={branch!r}: use one2many or one2one")
        self.o2m, self.o2o = (1.0, 0.0) if branch == "one2many" else (0.0, 1.0)
        return self

    def per_image(self, preds: dict[str, Any] | tuple, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Return every image's weighted (box, cls, l1) E2E loss, shape (B, 3), as ``PerImageDetectionLoss.per_image``.

        Args:
            preds (dict | tuple): One route's end-to-end predictions (``{"one2many", "one2one"}`` or an eval tuple).
            batch (dict): Batch with ``batch_idx``, ``cls`` and normalised xywh ``bboxes``.

        Returns:
            (torch.Tensor): Per-image losses, (B, 3).
        """
        preds = self.one2many.parse_output(preds)
        if "one2one" not in preds:  # a fused head that kept only its one-to-many branch (NMS inference)
            return self.one2many.per_image(preds, batch)
        if not preds["one2many"]:  # a fused head that kept only its one-to-one branch (NMS-free inference)
            return self.one2one.per_image(preds["one2one"], batch)
        if not self.o2o:  # one branch only (`of_branch`): the other's assignment would be wasted work
            return self.one2many.per_image(preds["one2many"], batch) * self.o2m
        if not self.o2m:
            return self.one2one.per_image(preds["one2one"], batch) * self.o2o
        one2many = self.one2many.per_image(preds["one2many"], batch)
        one2one = self.one2one.per_image(preds["one2one"], batch)
        return one2many * self.o2m + one2one * self.o2o


class DualE2ELoss(PerImageE2ELoss):
    """Stage-1 criterion of end-to-end (YOLO26) models: Ultralytics' E2E loss of the easy route plus the hard route's.

    As ``DualDetectionLoss``, with each route's loss the stock ``E2ELoss`` (weighted one-to-many + one-to-one) and its
    logged items the one-to-one branch's, as Ultralytics logs YOLO26 (``e_box_loss ... h_dfl_loss``; the ``dfl``
    items are YOLO26's L1 terms). ``update`` (once per epoch, by the trainer) decays the one-to-many weight of both
    routes together.
    """

    def __call__(self, preds: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Compute the dual-route E2E loss: shape (6,), easy (box, cls, l1) then hard, each times batch size."""
        return both_routes(super().__call__, preds, batch)  # stock E2ELoss path per route


def is_end2end(model: torch.nn.Module) -> bool:
    """Return whether a model's (last) Detect head is end-to-end (has a one-to-one branch, as YOLO26)."""
    return getattr(model.model[-1], "one2one_cv2", None) is not None


class RunningMedian:
    """Median of a stream of values, over the most recent ``capacity`` of them.

    Values live in a fixed-size ring buffer (allocated on first use, on the values' device), so memory is bounded by
    ``capacity`` floats; once full, the oldest values are overwritten and the median is over the last ``capacity``.
    The median of an even count is the mean of the two middle values.

    Args:
        capacity (int): Maximum number of values kept.

    """

    def __init__(self, capacity: int = 100_000):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.buffer: torch.Tensor | None = None
        self.count = 0  # values ever seen
        self.pos = 0  # next write position

    def __len__(self) -> int:
        """Return the number of values currently held."""
        return min(self.count, self.capacity)

    @property
    def values(self) -> torch.Tensor:
        """Return the values currently held (ring order, not arrival order)."""
        if self.buffer is None:
            return torch.zeros(0)
        return self.buffer[: len(self)]

    def reset(self) -> None:
        """Forget all values."""
        self.buffer, self.count, self.pos = None, 0, 0

    def update(self, values: torch.Tensor) -> None:
        """Append values, dropping the oldest beyond ``capacity``.

        Args:
            values (torch.Tensor): Values to append (any shape; flattened, detached).

        """
        # Leave inference mode so the buffer is a normal tensor that later in-place writes may touch.
        with torch.inference_mode(False), torch.no_grad():
            values = values.detach().flatten().float()
            if self.buffer is None:
                self.buffer = torch.zeros(self.capacity, device=values.device)
            values = values.to(self.buffer.device)[-self.capacity :]
            n = values.numel()
            idx = (self.pos + torch.arange(n, device=self.buffer.device)) % self.capacity
            self.buffer[idx] = values
            self.pos = (self.pos + n) % self.capacity
            self.count += n

    def median(self, extra: torch.Tensor | None = None) -> torch.Tensor:
        """Return the median of the held values, optionally together with ``extra`` values that are not stored.

        Args:
            extra (torch.Tensor, optional): Additional values to include in this median only.

        Returns:
            (torch.Tensor): Scalar median; NaN when there are no values at all.

        """
        values = self.values
        if extra is not None:
            extra = extra.detach().flatten().float()
            values = torch.cat((values.to(extra.device), extra))
        n = values.numel()
        if n == 0:
            return torch.tensor(float("nan"))
        lo = values.kthvalue((n + 1) // 2).values
        hi = values.kthvalue(n // 2 + 1).values
        return (lo + hi) / 2


class RouterObjective:
    """The router's objective, the same for every family: ``s*(L1 - Δ/2) + (1 - s)*(L2 + Δ/2)`` per image.

    ``L1``, ``L2`` are the per-image losses of the easy and the hard route (detached), ``s`` the easiness score and Δ
    the running median of ``L1 - L2`` (see `RouterLoss` for why); a family's router loss computes the per-image
    losses its own way and hands them to `per_image_objective`.

    Args:
        threshold (float): The score cut the logged ``hard`` share uses.
        delta (float, optional): Fixed Δ; if None, the running median is used.
        history (int): Number of most recent differences the running median keeps.

    Attributes:
        diffs (RunningMedian): History of ``L1_i - L2_i`` (saved in checkpoints for an exact resume).
        training (bool | None): Whether a call updates the history; None decides per call (grad mode and a score that
            requires grad).
    """

    def __init__(self, threshold: float, delta: float | None = None, history: int = 100_000):
        self.fixed_delta = delta
        self.diffs = RunningMedian(history)
        self.threshold = float(threshold)
        self.training: bool | None = None

    def delta(self, diffs: torch.Tensor | None = None, update: bool = False) -> torch.Tensor:
        """Return Δ: the fixed value, or the running median of the history together with ``diffs``.

        Args:
            diffs (torch.Tensor, optional): Current batch's ``L1 - L2``; included in the median.
            update (bool): Whether to append ``diffs`` to the history first.

        Returns:
            (torch.Tensor): Scalar Δ.

        """
        if update and diffs is not None:
            self.diffs.update(diffs)
            diffs = None  # already in the history
        if self.fixed_delta is not None:
            return torch.tensor(float(self.fixed_delta))
        return self.diffs.median(diffs)

    @staticmethod
    def objective(score: torch.Tensor, l1: torch.Tensor, l2: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """Return the per-image router loss ``s*(L1 - Δ/2) + (1 - s)*(L2 + Δ/2)``.

        Args:
            score (torch.Tensor): Easiness scores in (0, 1), (B,).
            l1 (torch.Tensor): Easy-route losses, (B,).
            l2 (torch.Tensor): Hard-route losses, (B,).
            delta (torch.Tensor): Scalar Δ.

        Returns:
            (torch.Tensor): Per-image losses, (B,).

        """
        return score * (l1 - delta / 2) + (1 - score) * (l2 + delta / 2)

    def per_image_objective(
        self, score: torch.Tensor, l1: torch.Tensor, l2: torch.Tensor, update: bool | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the per-image router losses for the routes' per-image losses, and the logged items.

        Args:
            score (torch.Tensor): Easiness scores, (B,) or (B, 1).
            l1 (torch.Tensor): Easy-route per-image losses, (B,).
            l2 (torch.Tensor): Hard-route per-image losses, (B,).
            update (bool, optional): Whether to add this batch to the Δ history; None uses ``training`` / auto.

        Returns:
            per_image (torch.Tensor): (B,) losses, differentiable w.r.t. the scores only.
            items (dict[str, torch.Tensor]): Detached ``r_loss``, ``delta``, ``score`` and ``hard`` (see ``__call__``).
        """
        score = score.reshape(-1)
        if update is None:
            update = self.training
        if update is None:
            update = torch.is_grad_enabled() and score.requires_grad
        diffs = l1 - l2
        # in data-parallel training every process takes Δ over all processes' images, so all train the same router
        delta = self.delta(gather_cat(diffs) if update else diffs, update=update).to(diffs.device)
        s = score.float()
        per_image = self.objective(s, l1, l2, delta)
        items = {
            "r_loss": per_image.detach().mean(),
            "delta": delta.detach(),
            "score": s.detach().mean(),
            "hard": hard_mask(s.detach(), self.threshold).float().mean(),
        }
        return per_image, items


class RouterLoss(RouterObjective, PerImageDetectionLoss):
    """Stage-2 criterion: trains the router's easiness score from the two routes' per-image detection losses.

    For image ``i`` with easy/hard per-image losses ``L1_i``/``L2_i`` (box+cls+dfl from ``per_image``, detached; for
    end-to-end heads the loss of the one-to-many branch, which inference with NMS (dydet's and Ultralytics' default)
    reads: measured on YOLO26, a router trained on the 0.1/0.9 branch mix stage 1 ends with, dominated by the
    one-to-one branch, ranked images no better than random for it, docs/ROUTER.md) and router score ``s_i``::

        loss_i = s_i * (L1_i - Δ/2) + (1 - s_i) * (L2_i + Δ/2),    d loss_i / d s_i = (L1_i - L2_i) - Δ

    ``Δ`` is the running median of ``L1_i - L2_i`` over the images seen so far, *including the current batch* (so the
    first batch needs no special case and the decision boundary tracks a 50/50 split from the first step), kept in a
    ``RunningMedian`` over the last ``history`` values. A fixed ``delta`` (e.g. an offline median over the training
    set) overrides it. The history is updated only in training: by default when grad mode is on and the score
    requires grad (a validator runs under inference mode and does not update it); set ``training`` to force either
    way.

    Args:
        model (torch.nn.Module): Model with ``.args`` and a ``Detect`` head at ``model.model[-1]``.
        delta (float, optional): Fixed Δ; if None, the running median is used.
        history (int): Number of most recent differences the running median keeps.
        tal_topk (int): Top-k of the task-aligned assigner.

    Attributes:
        diffs (RunningMedian): History of ``L1_i - L2_i``.
        training (bool | None): Whether ``__call__`` updates the history; None decides per call as above.

    """

    def __init__(self, model: torch.nn.Module, delta: float | None = None, history: int = 100_000, tal_topk: int = 10):
        PerImageDetectionLoss.__init__(self, model, tal_topk=tal_topk)
        RouterObjective.__init__(self, getattr(model, "threshold", DEFAULT_THRESHOLD), delta, history)
        # the per-image loss of one route: the stock detection loss, or the loss of the E2E branch NMS inference reads
        self.route_criterion = PerImageE2ELoss(model).of_branch("one2many") if is_end2end(model) else self

    def update(self) -> None:
        """Do nothing: the router loss has no per-epoch schedule.

        Ultralytics' trainer calls ``criterion.update()`` after every epoch when it exists, and its resume calls it
        unconditionally for end-to-end models (YOLO26), whose stage-2 criterion is this one.
        """

    @torch.no_grad()
    def route_losses(self, preds: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the per-image total detection losses ``(L1, L2)`` of the easy and hard routes, detached.

        Args:
            preds (dict | tuple): ``{"easy": ..., "hard": ..., ...}`` (route values as training dicts or eval tuples).
            batch (dict): Batch with ``batch_idx``, ``cls`` and normalised xywh ``bboxes``.

        Returns:
            (tuple[torch.Tensor, torch.Tensor]): ``L1`` and ``L2``, each of shape (B,), float32.

        """
        routes = route_outputs(preds)
        return tuple(self.route_criterion.per_image(routes[r], batch).sum(1).float().detach() for r in ROUTES)

    def __call__(
        self, preds: Any, batch: dict[str, torch.Tensor], update: bool | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Compute the router loss.

        Args:
            preds (dict | tuple): ``{"easy": ..., "hard": ..., "score": (B,)}``.
            batch (dict): Batch with ``batch_idx``, ``cls`` and normalised xywh ``bboxes``.
            update (bool, optional): Whether to add this batch to the Δ history; None uses ``training`` / auto.

        Returns:
            loss (torch.Tensor): Shape (1,): mean of ``loss_i`` times batch size (the Ultralytics convention that
                ``loss.sum()`` is the batch-mean loss times batch size), differentiable w.r.t. the scores only.
            items (dict[str, torch.Tensor]): Detached scalars ``r_loss`` (mean ``loss_i``), ``delta`` (Δ used),
                ``score`` (mean score) and ``hard`` (share of images the routing rule sends hard at the model's
                threshold).

        """
        routes = route_outputs(preds)
        per_image, items = self.per_image_objective(routes["score"], *self.route_losses(routes, batch), update)
        return (per_image.mean() * per_image.shape[0]).reshape(1), items
