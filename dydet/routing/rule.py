"""The routing rule and its values: the route names, the score cut that sends an image hard, and the value checks.

Every routing value (a threshold, a hard ratio, a forced route) is checked here, once, where it is turned into a
`RoutingSpec` (see `dydet.routing.spec`).
"""

from __future__ import annotations

import numpy as np
import torch

from dydet.utils.checks import check_unit_interval
from dydet.utils.errors import ArgumentError

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
    """Validate a router score threshold (easy route if score >= threshold)."""
    return check_unit_interval("threshold", threshold, " (0 sends every image easy, 1 sends every image hard)")


def check_hard_ratio(hard_ratio: float) -> float:
    """Validate a hard ratio (share of images sent to the hard route)."""
    return check_unit_interval("hard_ratio", hard_ratio, " (the share of images sent to the hard route)")


def check_route(route: str | None) -> str | None:
    """Validate a forced route: None (let the router decide), 'easy' or 'hard'."""
    if route is None or route in ROUTES:
        return route
    raise ArgumentError(f"route={route!r} is invalid: use 'easy', 'hard', or leave it unset to let the router decide")
