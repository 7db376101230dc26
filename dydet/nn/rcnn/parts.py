"""The torchvision parts of the R-CNN family: the letterbox transform, the detector, B2 and its composite links."""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.models.detection.transform import GeneralizedRCNNTransform

RESNETS = {18: resnet.resnet18, 34: resnet.resnet34, 50: resnet.resnet50, 101: resnet.resnet101}
# Per-image outputs are padded to this many rows of (x1, y1, x2, y2, conf, cls); padding rows have conf -1.
PAD_CONF = -1.0


class LetterboxTransform(GeneralizedRCNNTransform):
    """torchvision's R-CNN transform (ImageNet normalisation, padding to a multiple of 32) without its resize.

    Ultralytics' loaders already letterbox every image to `imgsz`; torchvision's default would resize it again to
    800/1333 px, so boxes come back in letterbox pixels only if the resize (and the matching postprocess rescale) are
    identities.
    """

    def resize(self, image: torch.Tensor, target: dict[str, Any] | None = None):
        """Return the image and target unchanged (the letterbox must not be resized again)."""
        return image, target

    def postprocess(self, result, image_shapes, original_image_sizes):
        """Return the detections unchanged: the images were not resized."""
        return result


def make_transform() -> LetterboxTransform:
    """Return the letterbox transform with torchvision's ImageNet mean and std."""
    return LetterboxTransform(800, 1333, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def build_faster_rcnn(depth: int, nc: int, **kwargs: Any) -> FasterRCNN:
    """Build a torchvision Faster R-CNN ResNet-FPN with random weights and the letterbox transform.

    Args:
        depth (int): ResNet depth (18, 34, 50, 101).
        nc (int): Object classes (torchvision adds background: `num_classes = nc + 1`).
        **kwargs (Any): Further `FasterRCNN` arguments (RPN/RoI settings).

    Returns:
        (FasterRCNN): The model, as `fasterrcnn_resnet50_fpn(weights=None)` builds it (plain BatchNorm, FPN 256
            channels, `LastLevelMaxPool`), except that every layer is trainable and the transform does not resize.
    """
    model = FasterRCNN(build_backbone(depth), num_classes=nc + 1, **kwargs)
    model.transform = make_transform()
    return model


def build_backbone(depth: int) -> nn.Module:
    """Return torchvision's ResNet-FPN backbone (`body` C2..C5 + `fpn`) with random weights, every layer trainable."""
    body = RESNETS[depth](weights=None, norm_layer=nn.BatchNorm2d)
    return _resnet_fpn_extractor(body, trainable_layers=5)


def stage_channels(depth: int) -> list[int]:
    """Return the channels of C2..C5 of a ResNet."""
    base = 64 if depth < 50 else 256
    return [base, base * 2, base * 4, base * 8]


def detections_tensor(detections: list[dict[str, torch.Tensor]], rows: int) -> torch.Tensor:
    """Pack torchvision's per-image detections into a (B, rows, 6) tensor of xyxy, conf, cls (0-based).

    Ultralytics' NMS treats a 6-column output as end-to-end (conf/class filter only, no second NMS), so validators and
    predictors read it as they read any detector's. Missing rows are padding with conf -1.
    """
    out = []
    for d in detections:
        boxes, scores, labels = d["boxes"], d["scores"], d["labels"]
        n = min(len(scores), rows)
        det = boxes.new_zeros((rows, 6))
        det[:, 4] = PAD_CONF
        det[:n, :4], det[:n, 4], det[:n, 5] = boxes[:n], scores[:n], (labels[:n] - 1).to(boxes.dtype)
        out.append(det)
    return torch.stack(out)


class LinkNorm(nn.BatchNorm2d):
    """BatchNorm of a composite link that always normalises with its running statistics (kept in eval, CBNetV2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise with the running statistics, in training too."""
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class Link(nn.Sequential):
    """One composite link: 1x1 conv (no bias) + BN, zero-initialised so that it adds nothing at first."""

    def __init__(self, c1: int, c2: int):
        """Create a link from a B1 level with `c1` channels to a B2 stage input with `c2` channels."""
        super().__init__(nn.Conv2d(c1, c2, 1, bias=False), LinkNorm(c2))
        self.zero_()

    def zero_(self) -> Link:
        """Zero the BN's scale and shift: the link's output is exactly 0."""
        nn.init.zeros_(self[1].weight)
        nn.init.zeros_(self[1].bias)
        return self


class CompositeLinks(nn.Module):
    """CBNetV2's dense higher-level composition from B1 into B2 (K = 2, B2 without stem and layer1).

    B2's stage `k` (layer2, layer3, layer4) reads an input at level k - 1 (C2, C3, C4); before that stage, every B1
    level above the input's own adds `nearest-up(BN(conv1x1(C_j)))`: layer2 gets C3, C4, C5; layer3 gets C4, C5;
    layer4 gets C5. The fusion comes before each stage's stride-2 block.
    """

    def __init__(self, channels: list[int]):
        """Create the links for B1 levels C2..C5 with `channels`."""
        super().__init__()
        self.links = nn.ModuleDict(
            {f"{t}_{s}": Link(channels[s - 2], channels[t - 2]) for t in (2, 3, 4) for s in range(t + 1, 6)}
        )

    def fuse(self, x: torch.Tensor, level: int, b1: list[torch.Tensor]) -> torch.Tensor:
        """Return `x` (a B2 stage input at level `level`) plus the links from B1's levels above it."""
        size = x.shape[-2:]
        for s in range(level + 1, 6):
            x = x + F.interpolate(self.links[f"{level}_{s}"](b1[s - 2]), size=size, mode="nearest")
        return x

    def zero_(self) -> CompositeLinks:
        """Zero every link (B2 then sees only B1's C2, as at the start of training)."""
        for link in self.links.values():
            link.zero_()
        return self


class SecondBackbone(nn.Module):
    """B2: ResNet layer2-4 with weights of its own; it reuses B1's C2 (no stem, no layer1)."""

    def __init__(self, body: nn.Module):
        """Create B2 from a ResNet body's layer2-4 (deep copies; the caller re-initialises them when needed)."""
        super().__init__()
        self.layer2, self.layer3, self.layer4 = (deepcopy(getattr(body, f"layer{i}")) for i in (2, 3, 4))

    def forward(self, b1: list[torch.Tensor], links: CompositeLinks) -> list[torch.Tensor]:
        """Return the hard route's C2..C5 (B1's C2, B2's C3..C5) from B1's C2..C5 through the links."""
        c3 = self.layer2(links.fuse(b1[0], 2, b1))
        c4 = self.layer3(links.fuse(c3, 3, b1))
        c5 = self.layer4(links.fuse(c4, 4, b1))
        return [b1[0], c3, c4, c5]
