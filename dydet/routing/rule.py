"""The routing rule and its values: the route names, the score cut that sends an image hard, and the value checks.

A routing value is checked once, against its entry of ``dydet/cfg/default.yaml``: by `dydet.cfg.check_args` when it
comes in as an argument, by these checks (`dydet.cfg.check_value`) when it comes in as a raw value, e.g. through
`dydet.routing.as_routing`. The rules below trust their inputs.
"""

from __future__ import annotations

import numpy as np
import torch

from dydet.cfg import check_value

# The two routes, in the order every per-route table and loop uses.
ROUTES = ("easy", "hard")
# The score cut of a model that has not been calibrated: the router's sigmoid midpoint.
DEFAULT_THRESHOLD = 0.5
# The hard ratio a calibration turns into the model's default threshold, and the router's rank split that validation
# reports as `(R)` and stage 2 selects its best checkpoint by: half of the images go hard.
DEFAULT_HARD_RATIO = 0.5
# The budgets a user can give instead of a threshold or hard ratio, with their unit and the calibration entry that
# holds the per-route costs.
BUDGETS = {"gflops": ("GFLOPs", "gflops"), "latency": ("ms", "latency_ms")}


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


def check_threshold(threshold: float) -> float:
    """Check a raw router score threshold (easy route if score >= threshold) against ``threshold`` in default.yaml."""
    return check_value("threshold", threshold)


def check_hard_ratio(hard_ratio: float) -> float:
    """Check a raw hard ratio (share of images sent to the hard route) against ``hard_ratio`` in default.yaml."""
    return check_value("hard_ratio", hard_ratio)


def check_route(route: str | None) -> str | None:
    """Check a raw forced route: None (let the router decide), 'easy' or 'hard'."""
    return check_value("route", route)
