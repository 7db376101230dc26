"""The routing core, the same for every detector family and runtime (PyTorch, CUDA graphs, ONNX).

It owns:

- the route names (`ROUTES`) and the routing rule (`hard_mask`: easy if score >= threshold, 1 sends all hard);
- the routing value a caller asks for (`RoutingSpec`: a score cut or a forced route), resolved once from
  `threshold=` / `hard_ratio=` / `route=` / `gflops=` / `latency=` by `resolve_routing`;
- the hard-ratio <-> threshold rule of a calibration and the paper's budget rule (Eq. 14);
- `route_batch`: split a batch by the rule, run each route's tail on its subset only, merge the outputs back in batch
  order, and return them with the record of what happened (`Routing`).

A family (see `dydet.nn.family`) only supplies its trunk + router and its two tails; nothing here knows about layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dydet.utils.checks import check_hard_ratio, check_route, check_threshold
from dydet.utils.errors import ArgumentError, CheckpointError

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

__all__ = [
    "BUDGETS",
    "DEFAULT_HARD_RATIO",
    "DEFAULT_THRESHOLD",
    "ROUTES",
    "Routing",
    "RoutingSpec",
    "budget_hard_ratio",
    "hard_mask",
    "hard_ratio_for_threshold",
    "mean_cost",
    "resolve_routing",
    "route_batch",
    "route_costs",
    "threshold_for_hard_ratio",
]


# ------------------------------------------------------------------------------------------------------------- rule
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
    """Which route each image of a routed batch took, and why (returned with the batch's outputs).

    Attributes:
        hard (torch.Tensor): (B,) bool on the host, True where the image went through the hard route.
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


@dataclass(frozen=True)
class RoutingSpec:
    """How to route: a score cut, or one route forced for every image; resolved once, then passed down unchanged.

    Attributes:
        threshold (float | None): Score cut in [0, 1] (easy if score >= threshold); None when a route is forced.
        route (str | None): 'easy' or 'hard' to force that route (the router is skipped), else None.
        source (str): What the caller gave: 'threshold', 'hard_ratio', 'gflops', 'latency', 'route' or 'default'.
        hard_ratio (float | None): The share of the calibration images this routing sends hard, when known.
        budget (tuple[str, float] | None): The budget asked for, e.g. `("gflops", 4.2)`, when one was.
        cost (dict[str, float] | None): Mean per-image cost on the calibration split at `hard_ratio`
            (`{"gflops", "latency_ms"}` as far as the calibration has them), when known.
    """

    threshold: float | None = None
    route: str | None = None
    source: str = "threshold"
    hard_ratio: float | None = None
    budget: tuple[str, float] | None = None
    cost: dict[str, float] | None = None

    def __post_init__(self) -> None:
        """Check the value: exactly one of threshold and route, each valid."""
        if (self.threshold is None) == (self.route is None):
            raise ValueError("a RoutingSpec needs exactly one of threshold= and route=")
        if self.route is not None:
            check_route(self.route)
        else:
            object.__setattr__(self, "threshold", check_threshold(self.threshold))

    @classmethod
    def at(cls, threshold: float) -> RoutingSpec:
        """Return the routing at a raw score cut."""
        return cls(threshold=threshold)

    @classmethod
    def forced(cls, route: str) -> RoutingSpec:
        """Return the routing that sends every image through `route`."""
        return cls(route=check_route(route), source="route")

    def describe(self) -> str:
        """Return a short human description, e.g. `'threshold 0.4213 (hard ratio 0.30 on the calibration split)'`."""
        if self.route:
            return f"route {self.route} (forced)"
        extra = f" (hard ratio {self.hard_ratio:.2f} on the calibration split)" if self.hard_ratio is not None else ""
        return f"threshold {self.threshold:.4f}{extra}"

    def cost_note(self) -> str:
        """Return e.g. `'; mean 3.21 GFLOPs, 12.3 ms per image on the calibration split, meets gflops=3.5'` or ''."""
        if not self.cost:
            return ""
        units = {key: unit for unit, key in BUDGETS.values()}
        costs = ", ".join(f"{v:.4g} {units[k]}" for k, v in self.cost.items())
        met = f", meets {self.budget[0]}={self.budget[1]:g}" if self.budget else ""
        return f"; mean {costs} per image on the calibration split{met}"


# -------------------------------------------------------------------------------------------- calibration rules
def threshold_for_hard_ratio(calibration: dict[str, Any], hard_ratio: float) -> float:
    """Return the score threshold that sends `hard_ratio` of the calibration images to the hard route.

    With N sorted scores and k = round(hard_ratio * N), the threshold lies halfway between the k-th and (k+1)-th
    lowest score, so exactly k calibration images score below it (hard). 0 gives 0.0 (all easy), 1 gives 1.0 (all
    hard).

    Args:
        calibration (dict): `model.calibration`.
        hard_ratio (float): Share of images to send to the hard route, in [0, 1].

    Returns:
        (float): The threshold.
    """
    p = check_hard_ratio(hard_ratio)
    scores = np.sort(np.asarray(calibration["scores"], dtype=np.float64))
    k = round(p * len(scores))
    if k <= 0:
        return 0.0
    if k >= len(scores):
        return 1.0
    return float((scores[k - 1] + scores[k]) / 2)


def hard_ratio_for_threshold(calibration: dict[str, Any], threshold: float) -> float:
    """Return the share of calibration images that a threshold sends to the hard route."""
    t = check_threshold(threshold)
    scores = np.asarray(calibration["scores"])
    return float(hard_mask(scores, t).mean())


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
        budget (float): Mean cost per image, in GFLOPs or ms.

    Returns:
        (float): The hard ratio in [0, 1].
    """
    unit = BUDGETS[kind][0]
    try:
        b = float(budget)
    except (TypeError, ValueError):
        b = math.nan
    if isinstance(budget, bool) or not math.isfinite(b):
        raise ArgumentError(f"{kind}={budget!r} is invalid: it must be a number, a mean cost per image in {unit}")
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


def _device_name(device: Any) -> str | None:
    """Return a device as 'cpu', 'cuda:N', ... ('0' and 'cuda' mean 'cuda:0'); None when not known."""
    d = str(device).strip().lower() if device is not None else ""
    if d in {"", "none"}:
        return None
    if d.isdigit():
        return f"cuda:{d}"
    return "cuda:0" if d == "cuda" else d


def _check_latency_device(calibration: dict[str, Any], device: Any, precision: str | None) -> None:
    """Refuse a latency budget on another device or precision than the calibration measured its latencies on."""
    measured_device, measured_precision = calibration.get("device", "?"), calibration.get("precision", "?")
    problems = []
    here = _device_name(device)
    if here is not None and here != _device_name(measured_device):
        problems.append(f"this run is on {here}")
    if precision is not None and precision != measured_precision:
        problems.append(f"this run is {precision}")
    if problems:
        raise ArgumentError(
            f"latency= is in ms as measured on {measured_device} at {measured_precision} by the calibration, but "
            f"{' and '.join(problems)}; pass gflops= or hard_ratio= instead, or re-calibrate on this device"
        )


def resolve_routing(
    calibration: dict[str, Any] | None,
    threshold: float | None = None,
    hard_ratio: float | None = None,
    route: str | None = None,
    gflops: float | None = None,
    latency: float | None = None,
    device: str | None = None,
    precision: str | None = None,
) -> RoutingSpec | None:
    """Turn the user's routing arguments into one `RoutingSpec`, checked once, with one-line errors.

    Exactly one of `threshold`, `hard_ratio`, `gflops`, `latency` may be given (all but `threshold` need a
    calibration); `route` forces a route and may not be combined with them.

    Args:
        calibration (dict, optional): The model's calibration record.
        threshold (float, optional): Raw score cut in [0, 1].
        hard_ratio (float, optional): Share of images to send to the hard route.
        route (str, optional): 'easy' or 'hard'.
        gflops (float, optional): Mean GFLOPs per image to meet.
        latency (float, optional): Mean batch-1 ms per image to meet, on the calibration's device and precision.
        device (str, optional): Where the model will run ('cpu', 'cuda:0', ...), checked against a latency budget.
        precision (str, optional): 'fp32' or 'fp16' the model will run at, checked against a latency budget.

    Returns:
        (RoutingSpec | None): The routing, or None when no routing argument was given (the caller's default).
    """
    route = check_route(route)
    given = {
        k: v
        for k, v in (("threshold", threshold), ("hard_ratio", hard_ratio), ("gflops", gflops), ("latency", latency))
        if v is not None
    }
    if route is not None:
        if given:
            raise ArgumentError(f"give either route= or {'/'.join(given)}=, not both (route= forces every image)")
        return RoutingSpec.forced(route)
    if len(given) > 1:
        if set(given) == {"threshold", "hard_ratio"}:
            raise ArgumentError(
                "give either threshold= or hard_ratio=, not both (hard_ratio is turned into a threshold)"
            )
        raise ArgumentError(f"give one of {', '.join(f'{k}=' for k in given)}, not several: each chooses the threshold")
    if not given:
        return None
    ((source, value),) = given.items()
    if source == "threshold":
        t = check_threshold(value)
        p = hard_ratio_for_threshold(calibration, t) if calibration else None
        return RoutingSpec(
            threshold=t, source=source, hard_ratio=p, cost=mean_cost(calibration, p) if p is not None else None
        )
    if source == "hard_ratio":
        check_hard_ratio(value)
    if not calibration:
        raise CheckpointError(
            f"{source}= needs a calibrated model: this checkpoint has no calibration; run 'dydet train stage=2' "
            "(which calibrates) or pass threshold= instead"
        )
    budget = None
    if source == "hard_ratio":
        p = check_hard_ratio(value)
    else:
        if source == "latency":
            _check_latency_device(calibration, device, precision)
        p = _met_hard_ratio(calibration, budget_hard_ratio(calibration, source, value))
        budget = (source, float(value))
    t = threshold_for_hard_ratio(calibration, p)
    p_met = hard_ratio_for_threshold(calibration, t)
    return RoutingSpec(threshold=t, source=source, hard_ratio=p_met, budget=budget, cost=mean_cost(calibration, p_met))


# ------------------------------------------------------------------------------------------------ split-run-merge
def _take(x: Any, index: torch.Tensor | np.ndarray) -> Any:
    """Index the batch dimension of a tensor / array, or of every one inside lists, tuples and dicts."""
    if isinstance(x, torch.Tensor):
        return x.index_select(0, index)
    if isinstance(x, np.ndarray):
        return x[index]
    if isinstance(x, dict):
        return {k: _take(v, index) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_take(t, index) for t in x)
    return x


def merge(easy: Any, hard: Any, easy_idx: torch.Tensor | np.ndarray, hard_idx: torch.Tensor | np.ndarray, n: int):
    """Interleave two routes' outputs (tensors, numpy arrays, or dicts/lists/tuples of them) back into batch order.

    Args:
        easy (Any): The easy tail's output on the images `easy_idx`.
        hard (Any): The hard tail's output on the images `hard_idx`, of the same structure.
        easy_idx (torch.Tensor | np.ndarray): Batch positions of the easy images.
        hard_idx (torch.Tensor | np.ndarray): Batch positions of the hard images.
        n (int): Batch size.

    Returns:
        (Any): The outputs of the whole batch in its original order; anything else than a tensor or an array (e.g.
            None) is taken from the easy output. Tensors whose per-image shapes differ between the routes (the heads'
            feature maps when the routes have different widths, as in dy-yolo11n-s) cannot be interleaved: None.
    """
    if isinstance(easy, (torch.Tensor, np.ndarray)) and easy.shape[1:] != hard.shape[1:]:
        return None
    if isinstance(easy, torch.Tensor):
        out = easy.new_empty((n, *easy.shape[1:]))
        out[easy_idx] = easy
        out[hard_idx] = hard
        return out
    if isinstance(easy, np.ndarray):
        out = np.empty((n, *easy.shape[1:]), dtype=easy.dtype)
        out[easy_idx], out[hard_idx] = easy, hard
        return out
    if isinstance(easy, dict):
        return {k: merge(easy[k], hard[k], easy_idx, hard_idx, n) for k in easy}
    if isinstance(easy, (list, tuple)):
        return type(easy)(merge(a, b, easy_idx, hard_idx, n) for a, b in zip(easy, hard))
    return easy


def route_batch(
    scores: torch.Tensor | np.ndarray | None,
    routing: RoutingSpec | float,
    run_easy: Callable[[Any], Any],
    run_hard: Callable[[Any], Any],
    batch_size: int | None = None,
) -> tuple[Any, Routing]:
    """Route a batch: decide each image's route, run each route's tail on its images only, merge back in order.

    `run_easy(index)` / `run_hard(index)` run a tail on the batch positions `index` (a tensor on the scores' device,
    or a numpy array for numpy scores) or, with `index=None`, on the whole batch. When every image takes one route,
    only that route's callable runs, once, with `None`; otherwise each runs once on its subset. Reading the decision
    back to the host happens once per batch.

    Args:
        scores (torch.Tensor | np.ndarray | None): (B,) router easiness scores; None only with a forced route.
        routing (RoutingSpec | float): The routing, or a raw score cut.
        run_easy (Callable): Runs the easy tail on a subset (or the whole batch with None).
        run_hard (Callable): Runs the hard tail on a subset (or the whole batch with None).
        batch_size (int, optional): Batch size; needed with a forced route when `scores` is None.

    Returns:
        (tuple[Any, Routing]): The outputs in batch order and the record of the routing.
    """
    spec = routing if isinstance(routing, RoutingSpec) else RoutingSpec.at(routing)
    n = batch_size if batch_size is not None else len(scores)
    if spec.route is not None:
        hard = torch.full((n,), spec.route == "hard", dtype=torch.bool)
        record = Routing(hard=hard)
        return (run_hard if spec.route == "hard" else run_easy)(None), record
    if scores is None:
        raise ValueError("route_batch needs router scores unless a route is forced")
    mask = hard_mask(scores, spec.threshold)
    host = torch.from_numpy(np.asarray(mask, dtype=bool)) if isinstance(mask, np.ndarray) else mask.cpu()  # one sync
    score = torch.from_numpy(np.asarray(scores)) if isinstance(scores, np.ndarray) else scores
    record = Routing(hard=host, score=score, threshold=spec.threshold)
    k = int(host.sum())
    if k == 0:
        return run_easy(None), record
    if k == n:
        return run_hard(None), record
    hard_idx, easy_idx = host.nonzero().flatten(), (~host).nonzero().flatten()
    if isinstance(scores, np.ndarray):
        hard_idx, easy_idx = hard_idx.numpy(), easy_idx.numpy()
    else:
        hard_idx = hard_idx.to(scores.device, non_blocking=True)
        easy_idx = easy_idx.to(scores.device, non_blocking=True)
    easy_out, hard_out = run_easy(easy_idx), run_hard(hard_idx)
    return merge(easy_out, hard_out, easy_idx, hard_idx, n), record


def take(state: Any, index: torch.Tensor | np.ndarray | None) -> Any:
    """Return `state` (a tensor, array, or list/tuple/dict of them) restricted to the batch positions `index`.

    None means the whole batch and returns `state` itself. A family's tail uses it to cut its trunk state.
    """
    return state if index is None else _take(state, index)
