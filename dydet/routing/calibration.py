"""The calibration rules: a calibration's hard ratio <-> threshold, and the paper's budget rule (Eq. 14)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dydet.routing.rule import BUDGETS, hard_mask
from dydet.utils.errors import ArgumentError, CheckpointError


def threshold_for_hard_ratio(calibration: dict[str, Any], hard_ratio: float) -> float:
    """Return the score threshold that sends `hard_ratio` of the calibration images to the hard route.

    With N sorted scores and k = round(hard_ratio * N), the threshold lies halfway between the k-th and (k+1)-th
    lowest score, so exactly k calibration images score below it (hard). 0 gives 0.0 (all easy), 1 gives 1.0 (all
    hard).

    Args:
        calibration (dict): `model.calibration`.
        hard_ratio (float): Share of images to send to the hard route, in [0, 1] (checked by the caller).

    Returns:
        (float): The threshold.
    """
    scores = np.sort(np.asarray(calibration["scores"], dtype=np.float64))
    k = round(hard_ratio * len(scores))
    if k <= 0:
        return 0.0
    if k >= len(scores):
        return 1.0
    return float((scores[k - 1] + scores[k]) / 2)


def hard_ratio_for_threshold(calibration: dict[str, Any], threshold: float) -> float:
    """Return the share of calibration images that a threshold sends to the hard route."""
    scores = np.asarray(calibration["scores"])
    return float(hard_mask(scores, threshold).mean())


def route_costs(calibration: dict[str, Any], kind: str) -> tuple[float, float]:
    """Return the per-image cost of an image routed easy and of one routed hard, from a calibration.

    GFLOPs include the router, which runs on every routed image; latencies are the calibration's batch-1 medians of
    each route (the router's few MFLOPs are within their noise).

    Args:
        calibration (dict): `model.calibration`.
        kind (str): 'gflops' or 'latency'.

    Returns:
        (tuple[float, float]): (easy, hard) cost in GFLOPs or ms per image.
    """
    costs = calibration.get(BUDGETS[kind][1]) or {}
    if "easy" not in costs or "hard" not in costs:
        raise CheckpointError(
            f"{kind}= needs per-route {BUDGETS[kind][0]} in the calibration, which this model lacks; "
            "re-calibrate it with 'dydet train stage=2' or pass hard_ratio= instead"
        )
    router = float(costs.get("router", 0.0)) if kind == "gflops" else 0.0
    return float(costs["easy"]) + router, float(costs["hard"]) + router


def budget_hard_ratio(calibration: dict[str, Any], kind: str, budget: float) -> float:
    """Return the hard ratio whose mean cost meets a per-image budget: the paper's Eq. 14.

    hard ratio = (budget - easy) / (hard - easy), with the two routes' costs from the calibration. A budget outside
    [easy, hard] cannot be met by routing and is refused with the reachable range.

    Args:
        calibration (dict): `model.calibration`.
        kind (str): 'gflops' or 'latency'.
        budget (float): Mean cost per image, in GFLOPs or ms (a number, checked by `dydet.cfg.check_args`).

    Returns:
        (float): The hard ratio in [0, 1].
    """
    unit, b = BUDGETS[kind][0], float(budget)
    easy, hard = route_costs(calibration, kind)
    lo, hi = min(easy, hard), max(easy, hard)
    tol = 1e-9 * max(abs(hi), 1.0)
    if not lo - tol <= b <= hi + tol:
        raise ArgumentError(
            f"{kind}={budget!r} is out of reach: routing this model costs {lo:.4g} (all easy) to {hi:.4g} (all hard) "
            f"{unit} per image at {calibration.get('imgsz')} px; give a budget in that range"
        )
    return float(np.clip((b - easy) / (hard - easy), 0.0, 1.0)) if hard != easy else 0.0


def _met_hard_ratio(calibration: dict[str, Any], hard_ratio: float) -> float:
    """Round a hard ratio down to a share of the calibration images, so its mean cost does not exceed the budget."""
    n = len(calibration["scores"])
    return math.floor(hard_ratio * n + 1e-9) / n if n else 0.0


def mean_cost(calibration: dict[str, Any], hard_ratio: float) -> dict[str, float]:
    """Return the calibration's mean per-image costs at a hard ratio: `{"gflops", "latency_ms"}` as far as known.

    The GFLOPs include the router, as `dydet.utils.flops.mixed_gflops` counts them.
    """
    out = {}
    for kind, (_, key) in BUDGETS.items():
        if {"easy", "hard"} <= set(calibration.get(key) or {}):
            easy, hard = route_costs(calibration, kind)
            out[key] = (1 - hard_ratio) * easy + hard_ratio * hard
    return out
