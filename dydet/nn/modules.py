"""dydet's own network modules: the router and the per-image routing record."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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


def hard_mask(score: torch.Tensor | np.ndarray, threshold: float) -> torch.Tensor | np.ndarray:
    """Return which images go to the hard route under a score cut: the routing rule, in one place.

    An image is easy if its score is >= `threshold`; a threshold of 1 sends every image hard, even one scoring exactly
    1.0. Works on torch tensors and numpy arrays alike and returns a bool mask of the same kind.

    Args:
        score (torch.Tensor | np.ndarray): (B,) easiness scores.
        threshold (float): Score cut in [0, 1].

    Returns:
        (torch.Tensor | np.ndarray): (B,) bool, True where the image goes hard.
    """
    return (score < threshold) | (threshold >= 1)


@dataclass
class Routing:
    """Which route each image of the last routed batch took, and why.

    Attributes:
        hard (torch.Tensor): (B,) bool, True where the image went through the hard route.
        score (torch.Tensor | None): (B,) router easiness scores, None when a route was forced.
        threshold (float | None): The score cut used (easy if score >= threshold), None when a route was forced.
    """

    hard: torch.Tensor
    score: torch.Tensor | None = None
    threshold: float | None = None

    @property
    def routes(self) -> list[str]:
        """Return 'easy' or 'hard' for every image, in batch order."""
        return ["hard" if h else "easy" for h in self.hard.tolist()]

    @property
    def hard_ratio(self) -> float:
        """Return the share of images that took the hard route."""
        return float(self.hard.float().mean()) if self.hard.numel() else 0.0
