"""dydet's own network modules: the router, and the layers that YOLOv7-family YAMLs need.

The routing rule and the record of a routed batch are in `dydet.engine.routing`.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from ultralytics.nn.modules import Conv


class Router(nn.Module):
    """Tiny SE-like router: per-image easiness score from backbone-1's stage outputs.

    Global-average-pools every stage output, concatenates them, then 1x1 conv to C/reduction, ReLU, 1x1 conv to one
    channel and a sigmoid. A high score means the easy route is expected to be enough for that image.

    Attributes:
        reduce (nn.Conv2d): First 1x1 conv, C -> C/reduction.
        act (nn.ReLU): Hidden activation.
        score (nn.Conv2d): Second 1x1 conv, C/reduction -> 1 (the logit of the easiness score).
    """

    def __init__(self, channels: list[int] | tuple[int, ...], reduction: int = 4):
        """Create a router for stage outputs with the given channel counts.

        Args:
            channels (list[int] | tuple[int, ...]): Channels of each pooled stage output.
            reduction (int): Hidden width is sum(channels) // reduction (at least 8).
        """
        super().__init__()
        c = sum(channels)
        hidden = max(c // reduction, 8)
        self.reduce = nn.Conv2d(c, hidden, 1)
        self.act = nn.ReLU()
        self.score = nn.Conv2d(hidden, 1, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Return the (B,) easiness scores in (0, 1) for a list of (B, C_i, H_i, W_i) stage outputs."""
        pooled = torch.cat([f.mean((2, 3), keepdim=True) for f in feats], 1)
        return self.score(self.act(self.reduce(pooled))).flatten().sigmoid()

    @torch.no_grad()
    def normalize(self, center: float, scale: float) -> None:
        """Map the logit `center` to score 0.5 and a logit `scale` to one unit, by rewriting the last conv.

        The new logit is `(logit - center) / scale`: a monotone map, so every image keeps its rank and every hard
        ratio its images, while the scores of images like the calibration set spread over (0, 1) around 0.5 instead
        of crowding where the sigmoid is flat (and, in float32, equal). The change lives in the weights, so every
        runtime and export inherits it.

        Args:
            center (float): Logit that becomes 0 (score 0.5), e.g. the calibration images' median logit.
            scale (float): Positive logit spread that becomes 1.
        """
        if not (math.isfinite(center) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"cannot normalize the router with center={center!r}, scale={scale!r}")
        self.score.weight.div_(scale)
        self.score.bias.sub_(center).div_(scale)


class SPPCSPC(nn.Module):
    """YOLOv7's spatial-pyramid-pooling block in a cross-stage-partial layout (described in the YOLOv7 paper).

    One branch runs 1x1 -> 3x3 -> 1x1 convs, max-pools the result at kernel 5, 9 and 13 (here as three cascaded
    5x5 pools, which give exactly the same maps), concatenates the four maps and runs 1x1 -> 3x3 convs; a 1x1 shortcut
    branch reads the input; a final 1x1 conv merges both. The hidden width equals the output width.

    Attributes:
        cv1, cv3, cv4 (Conv): The pooled branch's 1x1, 3x3 and 1x1 convs before pooling.
        cv5, cv6 (Conv): The 1x1 and 3x3 convs after pooling.
        cv2 (Conv): The 1x1 shortcut branch.
        cv7 (Conv): The 1x1 conv merging both branches.
        m (nn.MaxPool2d): The 5x5, stride-1 max-pool applied 1-3 times.
    """

    def __init__(self, c1: int, c2: int, k: int = 5):
        """Create the block.

        Args:
            c1 (int): Input channels.
            c2 (int): Output (and hidden) channels.
            k (int): Kernel of the cascaded max-pool (5 gives the 5/9/13 pyramid).
        """
        super().__init__()
        c_ = c2
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c1, c_, 1, 1)
        self.cv3 = Conv(c_, c_, 3, 1)
        self.cv4 = Conv(c_, c_, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)
        self.cv5 = Conv(4 * c_, c_, 1, 1)
        self.cv6 = Conv(c_, c_, 3, 1)
        self.cv7 = Conv(2 * c_, c2, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the (B, c2, H, W) output for a (B, c1, H, W) input."""
        pooled = [self.cv4(self.cv3(self.cv1(x)))]
        for _ in range(3):
            pooled.append(self.m(pooled[-1]))
        y1 = self.cv6(self.cv5(torch.cat(pooled, 1)))
        return self.cv7(torch.cat((y1, self.cv2(x)), 1))


class ReOrg(nn.Module):
    """Space-to-depth: (B, C, H, W) -> (B, 4C, H/2, W/2), the parameter-free stem of YOLOv7-W6 (same order as Focus)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Stack the four pixel phases of every 2x2 cell along the channels."""
        return torch.cat((x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]), 1)
