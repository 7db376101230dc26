"""Dy-Faster R-CNN: DynamicDet on torchvision's Faster R-CNN, and the static Faster R-CNN it extends.

Easy route: ResNet B1 -> FPN -> RPN -> RoI heads (a plain torchvision Faster R-CNN). Hard route: B1 -> composite
links -> B2 (ResNet layer2-4, reusing B1's C2, as CBNetV2's dual backbone) -> the *same* FPN / RPN / RoI heads.
Router on B1's C2-C5. Routing in a batch: B1 and the router on every image, links + B2 only on the hard images, then
one FPN / RPN / RoI pass on the merged per-image features.
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.image_list import ImageList
from ultralytics.utils import LOGGER
from ultralytics.utils.ops import xywh2xyxy

from dydet.cfg.training import RCNN_TRAIN_DEFAULTS
from dydet.nn.family import DetectorFamily
from dydet.nn.modules import Router
from dydet.nn.rcnn.config import load_rcnn_yaml
from dydet.nn.rcnn.parts import (
    CompositeLinks,
    SecondBackbone,
    build_backbone,
    build_faster_rcnn,
    detections_tensor,
    make_transform,
    stage_channels,
)
from dydet.nn.rcnn.pretrained import load_pretrained, read_state_dict
from dydet.routing import DEFAULT_THRESHOLD, ROUTES, as_routing, take
from dydet.utils.checkpoint import is_model_record
from dydet.utils.errors import ArgumentError, ConfigError
from dydet.utils.flops import route_gflops

# The RPN and RoI samplers draw random anchors / proposals; per-image losses (stage 2, the oracle) reseed them with
# this value before every image so that an image's loss does not depend on its batch or its position in it.
SAMPLING_SEED = 0
STRIDES = (4.0, 8.0, 16.0, 32.0, 64.0)  # FPN levels P2..P6
# torchvision's loss names -> dydet's loss columns (prefixed e_ / h_ per route)
LOSS_NAMES = {
    "loss_objectness": "obj_loss",
    "loss_rpn_box_reg": "rpn_loss",
    "loss_classifier": "cls_loss",
    "loss_box_reg": "box_loss",
}
ROUTER_ITEMS = ("r_loss", "delta", "score", "hard")


def build_targets(batch: dict[str, Any]) -> list[dict[str, torch.Tensor]]:
    """Turn an Ultralytics batch into torchvision targets: xyxy boxes in letterbox pixels, 1-based labels.

    Boxes narrower or lower than one pixel are dropped (torchvision's box coder takes their log size).
    """
    img = batch["img"]
    h, w = img.shape[-2:]
    scale = torch.tensor([w, h, w, h], device=img.device, dtype=torch.float32)
    boxes = xywh2xyxy(batch["bboxes"].to(img.device).float()) * scale
    labels = batch["cls"].to(img.device).view(-1).long() + 1
    idx = batch["batch_idx"].to(img.device).view(-1).long()
    targets = []
    for i in range(img.shape[0]):
        b, lab = boxes[idx == i], labels[idx == i]
        keep = ((b[:, 2] - b[:, 0]) >= 1) & ((b[:, 3] - b[:, 1]) >= 1)
        targets.append({"boxes": b[keep], "labels": lab[keep]})
    return targets


@contextmanager
def sampling_heads(model: nn.Module):
    """Let the RPN and RoI heads compute their (training) losses while the rest of the model stays as it is."""
    saved = model.rpn.training, model.roi_heads.training
    model.rpn.training = model.roi_heads.training = True
    try:
        yield
    finally:
        model.rpn.training, model.roi_heads.training = saved


class RCNNCommon:
    """What the dynamic and the static R-CNN models share: YAML handling, names, strides, the front-end contract."""

    yaml: dict
    task = "detect"

    @staticmethod
    def _read_cfg(cfg: Any, ch: int, nc: int | None, default: str) -> dict[str, Any]:
        """Load and check the YAML (3 channels) and apply `nc`."""
        d = load_rcnn_yaml(default if cfg is None else cfg)
        if d.get("family") != "rcnn":
            raise ConfigError(f"'{cfg}' is not an R-CNN model YAML (no 'family: rcnn')")
        if ch != 3:
            raise ConfigError(f"R-CNN models read 3-channel images (ImageNet normalisation), got channels={ch}")
        d["channels"] = 3
        if nc and nc != d["nc"]:
            LOGGER.info(f"Overriding model.yaml nc={d['nc']} with nc={nc}")
            d["nc"] = int(nc)
        return d

    def _set_attrs(self, d: dict[str, Any]) -> None:
        """Set `yaml`, `nc`, `names`, `stride`, `args` (after `nn.Module.__init__`)."""
        self.yaml = d
        self.nc = d["nc"]
        self.names = {i: f"{i}" for i in range(d["nc"])}
        self.stride = torch.tensor(STRIDES)
        self.args = {}

    @property
    def depth(self) -> int:
        """Return the ResNet depth."""
        return int(self.yaml["depth"])

    def fuse(self, verbose: bool = True):
        """Return the model unchanged (torchvision's layers are not fused; Ultralytics' loaders call this)."""
        return self

    def set_head_attr(self, **kwargs: Any) -> None:
        """Accept Ultralytics' head settings (`max_det`, ...): the RoI heads keep their own."""

    def is_fused(self, thresh: int = 10) -> bool:
        """Return False: R-CNN models are never fused."""
        return False


class StaticRCNN(RCNNCommon, FasterRCNN):
    """A plain torchvision Faster R-CNN ResNet-FPN (`faster-rcnn.yaml`): the static baseline, equal to the easy route.

    Its state dict is torchvision's (`backbone.body.*`, `backbone.fpn.*`, `rpn.*`, `roi_heads.*`). `model(x)` with a
    (B, 3, H, W) tensor of 0-1 letterboxed images returns (B, 100, 6) detections (xyxy, conf, 0-based class) in eval
    mode; a list of images (and targets) behaves exactly as torchvision's `FasterRCNN`.
    """

    def __init__(self, cfg: str | Path | dict | None = None, ch: int = 3, nc: int | None = None, verbose: bool = True):
        """Build the model from a YAML path, a shipped name (e.g. `faster-rcnn-r50.yaml`) or a model dict."""
        d = self._read_cfg(cfg, ch, nc, "faster-rcnn-r50.yaml")
        FasterRCNN.__init__(self, build_backbone(d["depth"]), num_classes=d["nc"] + 1, **(d.get("detector") or {}))
        self.transform = make_transform()
        self._set_attrs(d)

    def forward(self, images, targets=None, **kwargs):
        """Detect on a (B, 3, H, W) 0-1 tensor ((B, 100, 6) in eval mode), or behave as `FasterRCNN` on a list."""
        if isinstance(images, torch.Tensor) and not self.training:
            dets = super().forward(list(images))
            return detections_tensor(dets, self.roi_heads.detections_per_img)
        return super().forward(images, targets)


class RCNNDetectionModel(RCNNCommon, nn.Module, DetectorFamily):
    """Dy-Faster R-CNN: easy route B1 -> FPN/RPN/RoI, hard route B1 -> links -> B2 -> the same FPN/RPN/RoI, a router.

    Forward behaviours (as `DynamicDetectionModel`'s):
        - `model(batch_dict)`: the loss of the stage being trained (`loss`);
        - training mode, `model(x)`: both routes' detections and the router scores (`forward_both`);
        - eval mode, `model(x, threshold=t | route=...)`: routed per image, (B, 100, 6) detections in batch order
          (xyxy letterbox pixels, conf, 0-based class; padding rows have conf -1), which Ultralytics' NMS passes
          through as an end-to-end output.

    Attributes:
        transform (LetterboxTransform): Normalisation and padding (no resize).
        b1 (nn.Module): ResNet stem..layer4 returning C2..C5 (torchvision's `IntermediateLayerGetter`).
        b2 (SecondBackbone): ResNet layer2-4 of the hard route.
        links (CompositeLinks): The zero-initialised 1x1 conv + BN links from B1 into B2's stage inputs.
        fpn, rpn, roi_heads (nn.Module): torchvision's shared FPN, RPN and RoI heads.
        router (Router): The easiness-score router on B1's C2..C5.
        loss_weights (tuple[float, float]): Stage-1 weights of the easy and the hard route's loss.
    """

    default_cfg = "dy-faster-rcnn-r50.yaml"
    # `dydet export` refuses this family: torchvision's RPN / RoI heads (data-dependent proposal counts, NMS, RoIAlign)
    # do not export as the split router / easy / hard graphs dydet's runtimes route between
    export_refusal = (
        "dydet export does not support the R-CNN family: torchvision's RPN and RoI heads (data-dependent proposals, "
        "NMS, RoIAlign) do not split into the router / easy / hard graphs that dydet's runtimes route; "
        "use the PyTorch checkpoint (dydet predict / val / benchmark)"
    )
    own_pretrained = True  # `pretrained=` is a torchvision Faster R-CNN or ImageNet ResNet state dict

    def __init__(self, cfg: str | Path | dict | None = None, ch: int = 3, nc: int | None = None, verbose: bool = True):
        """Build the model from a YAML path, a shipped name (e.g. `dy-faster-rcnn-r18.yaml`) or a model dict."""
        nn.Module.__init__(self)
        d = self._read_cfg(cfg, ch, nc, self.default_cfg)
        self._set_attrs(d)
        if "dynamic" not in d:
            raise ConfigError(
                f"'{d.get('yaml_file', cfg)}' is a static R-CNN YAML; a dynamic one has a 'dynamic:' "
                "section (e.g. dy-faster-rcnn-r50.yaml)"
            )
        dyn = d["dynamic"] or {}
        built = build_faster_rcnn(d["depth"], d["nc"], **(d.get("detector") or {}))
        channels = stage_channels(d["depth"])
        self.transform = built.transform
        self.b1 = built.backbone.body
        self.b2 = SecondBackbone(self.b1)  # a copy of B1's layer2-4: with zero links both routes start equal
        self.links = CompositeLinks(channels)
        self.fpn = built.backbone.fpn
        self.rpn = built.rpn
        self.roi_heads = built.roi_heads
        self.router = Router(channels, dyn.get("router_reduction", 4))
        weights = dyn.get("loss_weights", [1.0, 1.0])
        if len(weights) != 2 or min(weights) < 0:
            raise ConfigError(
                f"dynamic.loss_weights={weights!r} is invalid: give two non-negative weights [easy, hard]"
            )
        self.loss_weights = (float(weights[0]), float(weights[1]))
        self.threshold = DEFAULT_THRESHOLD
        self.calibration = None
        self.stage = 0
        self.criterion = None
        if verbose:
            self.info()

    # ------------------------------------------------------------------------------------------------ family hooks
    @staticmethod
    def train_defaults() -> dict[str, Any]:
        """Return this family's training defaults (SGD, no mosaic / mixup / HSV / affine augmentation)."""
        return dict(RCNN_TRAIN_DEFAULTS)

    @staticmethod
    def check_pretrained(path: str | Path) -> None:
        """Refuse early, with a one-line error, a `pretrained=` file that holds no torchvision state dict."""
        read_state_dict(path)

    # ------------------------------------------------------------------------------------------------------ parts
    def backbone1(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Return B1's C2..C5 for normalised images."""
        return list(self.b1(images).values())

    def backbone2(self, c: list[torch.Tensor]) -> list[torch.Tensor]:
        """Return the hard route's C2..C5 (B1's C2, B2's C3..C5) from B1's C2..C5."""
        return self.b2(c, self.links)

    def heads(
        self, images: ImageList, c: list[torch.Tensor], targets: list[dict] | None = None
    ) -> tuple[list[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
        """Run the shared FPN, RPN and RoI heads on C2..C5: torchvision's (detections, losses)."""
        feats = self.fpn(OrderedDict((str(i), f) for i, f in enumerate(c)))
        proposals, rpn_losses = self.rpn(images, feats, targets)
        detections, roi_losses = self.roi_heads(feats, proposals, images.image_sizes, targets)
        return detections, {**rpn_losses, **roi_losses}

    def detect(self, images: ImageList, c: list[torch.Tensor]) -> torch.Tensor:
        """Return the (B, 100, 6) detections of the shared heads on C2..C5."""
        return detections_tensor(self.heads(images, c)[0], self.roi_heads.detections_per_img)

    def _images(self, x: torch.Tensor, targets: list[dict] | None = None) -> tuple[ImageList, list[dict] | None]:
        """Normalise and pad a (B, 3, H, W) 0-1 batch (and its targets) as torchvision's transform does."""
        return self.transform(list(x), targets)

    # ---------------------------------------------------------------------------------------------------- routing
    def run_trunk(self, x: torch.Tensor, score: bool = True) -> tuple[dict[str, Any], torch.Tensor | None]:
        """Run the transform and B1 (and the router unless `score=False`) on the whole batch.

        Returns:
            (tuple[dict, torch.Tensor | None]): `{"images": ImageList, "c": [C2..C5]}` and the (B,) scores or None.
        """
        images, _ = self._images(x)
        c = self.backbone1(images.tensors)
        return {"images": images, "c": c}, (self.router(c) if score else None)

    def run_tail(self, route: str, state: dict[str, Any], index: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Return one route's C2..C5 for the images `index`: B1's own (easy), or through links + B2 (hard).

        The shared FPN / RPN / RoI heads run afterwards, once, on the merged batch (`finish_routed`).
        """
        if route not in ROUTES:
            raise ArgumentError(f"route={route!r} is invalid: use 'easy' or 'hard'")
        c = take(state["c"], index)
        return c if route == "easy" else self.backbone2(c)

    def finish_routed(self, state: dict[str, Any], out: list[torch.Tensor]) -> torch.Tensor:
        """Run the one head pass (FPN, RPN, RoI heads) on the routed C2..C5: (B, 100, 6) detections in batch order."""
        return self.detect(state["images"], out)

    def forward_both(self, x: torch.Tensor) -> dict[str, Any]:
        """Run both routes on every image: `{"easy": (B, 100, 6), "hard": (B, 100, 6), "score": (B,)}`."""
        state, score = self.run_trunk(x)
        c = state["c"]
        return {
            "easy": self.detect(state["images"], c),
            "hard": self.detect(state["images"], self.backbone2(c)),
            "score": score,
        }

    def forward(self, x: torch.Tensor | dict, *args, **kwargs) -> Any:
        """A batch dict gives the loss; a tensor gives detections (see the class docstring)."""
        if isinstance(x, dict):
            return self.loss(x, *args, **kwargs)
        return self.predict(x, **kwargs)

    def predict(self, x: torch.Tensor, threshold: float | None = None, route: str | None = None, **kwargs) -> Any:
        """Both routes in training mode; per-image routing at `threshold` (or a forced `route`) in eval mode."""
        if self.training:
            return self.forward_both(x)
        return self.routed(x, as_routing(threshold=threshold, route=route or None))[0]

    # ------------------------------------------------------------------------------------------------------ losses
    def init_criterion(self):
        """Return the criterion of the stage being trained: both routes' losses, or the router loss."""
        from dydet.nn.rcnn.loss import CascadeLoss, RCNNRouterLoss

        return RCNNRouterLoss(self.threshold) if self.stage >= 2 else CascadeLoss(self.loss_weights)

    def loss_names(self) -> tuple[str, ...]:
        """Return the loss columns of the stage being trained."""
        if self.stage >= 2:
            return ROUTER_ITEMS
        return tuple(f"{r[0]}_{n}" for r in ROUTES for n in LOSS_NAMES.values())

    def loss(self, batch: dict[str, Any], preds: Any = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return `(loss, items)` of the stage being trained for a batch (Ultralytics' trainer contract).

        With `preds` (the validator during training: eval mode, where torchvision computes no losses) the items are
        zeros with the same names.
        """
        if preds is not None:
            return torch.zeros(1, device=batch["img"].device), {
                k: torch.zeros((), device=batch["img"].device) for k in self.loss_names()
            }
        if self.criterion is None:
            self.criterion = self.init_criterion()
        images, targets = self._images(batch["img"], build_targets(batch))
        if self.stage >= 2:
            with torch.no_grad():
                c = self.backbone1(images.tensors)
            l1, l2 = self.image_losses(images, targets, c)
            return self.criterion(self.router([f.detach() for f in c]), l1, l2)
        c = self.backbone1(images.tensors)
        losses = {"easy": self.heads(images, c, targets)[1], "hard": self.heads(images, self.backbone2(c), targets)[1]}
        return self.criterion(losses)

    @torch.no_grad()
    def image_losses(
        self, images: ImageList, targets: list[dict], c: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return every image's own total detection loss through each route, `(L1, L2)`, each (B,) and detached.

        The backbones and the FPN run batched; the RPN and RoI heads (whose losses torchvision averages over the
        batch and whose samplers are random) run per image with the samplers reseeded, so row i equals the loss of
        image i in a batch of one. BatchNorm layers must be in eval mode (stage 2, validation) for that to hold.
        """
        out = []
        devices = [images.tensors.device] if images.tensors.is_cuda else []
        for feats in (c, self.backbone2(c)):
            fpn = self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))
            losses = []
            for i, size in enumerate(images.image_sizes):
                one = ImageList(images.tensors[i : i + 1], [size])
                fi = OrderedDict((k, v[i : i + 1]) for k, v in fpn.items())
                with torch.random.fork_rng(devices=devices), sampling_heads(self):
                    torch.manual_seed(SAMPLING_SEED)
                    proposals, rpn_losses = self.rpn(one, fi, [targets[i]])
                    _, roi_losses = self.roi_heads(fi, proposals, one.image_sizes, [targets[i]])
                losses.append(sum(rpn_losses.values()) + sum(roi_losses.values()))
            out.append(torch.stack(losses).float())
        return out[0], out[1]

    def per_image_losses(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return `(L1, L2)`: every image's own detection loss through the easy and the hard route."""
        with torch.no_grad():
            images, targets = self._images(batch["img"], build_targets(batch))
            return self.image_losses(images, targets, self.backbone1(images.tensors))

    # ----------------------------------------------------------------------------------------------------- weights
    def load(self, weights: Any, verbose: bool = True) -> RCNNDetectionModel:
        """Load a dydet R-CNN model, or initialise from a torchvision Faster R-CNN / ImageNet ResNet state dict.

        Args:
            weights (Any): A `RCNNDetectionModel`, a checkpoint dict holding one, or a state dict (see
                `dydet.nn.rcnn.pretrained.load_pretrained`).
            verbose (bool): Log what was transferred.
        """
        if isinstance(weights, (str, Path)) and str(weights).endswith(".pt"):
            try:
                raw = torch.load(weights, map_location="cpu", weights_only=True)
            except Exception:  # not weights-only: `load_pretrained` refuses it with a one-line error
                raw = None
            record = (raw.get("ema") or raw.get("model")) if isinstance(raw, dict) else None
            if is_model_record(record) and record.get("class") == "DynamicRCNN":  # a dydet R-CNN checkpoint's record
                state = {k: v.float() if v.is_floating_point() else v for k, v in record["state_dict"].items()}
                self.load_state_dict(state)
                if verbose:
                    LOGGER.info(f"Transferred {len(self.state_dict())} items from a {record['class']}")
                return self
        model = (weights.get("ema") or weights.get("model")) if isinstance(weights, dict) else weights
        if isinstance(model, RCNNDetectionModel):
            self.load_state_dict(model.float().state_dict())
            if verbose:
                LOGGER.info(f"Transferred {len(self.state_dict())} items from a {type(model).__name__}")
            return self
        load_pretrained(self, weights, verbose=verbose)
        return self

    # --------------------------------------------------------------------------------------------------- reporting
    def route_modules(self, route: str) -> list[nn.Module]:
        """Return the modules one route runs ('easy': B1 + heads, 'hard': also links + B2)."""
        easy = [self.b1, self.fpn, self.rpn, self.roi_heads]
        return easy if route == "easy" else [*easy, self.links, self.b2]

    def route_summary(self, imgsz: int | list[int] = 640) -> dict[str, dict[str, float]]:
        """Return parameters and GFLOPs of the easy route, the hard route and the router, per image at `imgsz`."""

        def params(modules: list[nn.Module]) -> int:
            return sum(p.numel() for m in modules for p in m.parameters())

        with self._every_proposal_kept():
            return {
                **{
                    r: {"params": params(self.route_modules(r)), "gflops": route_gflops(self, r, imgsz)} for r in ROUTES
                },
                "router": {"params": params([self.router]), "gflops": route_gflops(self, "router", imgsz)},
            }

    @contextmanager
    def _every_proposal_kept(self):
        """Let no RPN NMS thin the proposals, so that the RoI head's cost is counted at the full `post_nms_top_n`.

        How many proposals survive NMS depends on the weights and the image; costs are counted, as mmdet counts them,
        at the configured number of proposals (1000 at test time by default), the same for any weights.
        """
        nms_thresh = self.rpn.nms_thresh
        self.rpn.nms_thresh = 1.0  # an IoU is never above 1: nothing is suppressed
        try:
            yield
        finally:
            self.rpn.nms_thresh = nms_thresh

    def info(self, detailed: bool = False, verbose: bool = True, imgsz: int | list[int] = 640):
        """Log a per-route summary (parameters, GFLOPs); return (layers, parameters, gradients, hard GFLOPs)."""
        if not verbose:
            return None
        summary = self.route_summary(imgsz)
        n_l = sum(1 for m in self.modules() if not m._modules)
        n_p = sum(p.numel() for p in self.parameters())
        n_g = sum(p.numel() for p in self.parameters() if p.requires_grad)
        name = Path(self.yaml.get("yaml_file", "dy-faster-rcnn")).stem
        LOGGER.info(f"{name} summary: {n_l:,} layers, {n_p:,} parameters, {n_g:,} gradients")
        for route in ("easy", "hard", "router"):
            s = summary[route]
            LOGGER.info(f"  {route:>6}: {s['params']:>12,} parameters {s['gflops']:>9.2f} GFLOPs @ {imgsz}")
        return n_l, n_p, n_g, summary["hard"]["gflops"]
