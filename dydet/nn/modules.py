"""dydet's own network modules: the router (the routing rule and record are in `dydet.engine.routing`)."""

from __future__ import annotations

import torch
from torch import nn


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
