"""The routing value a caller asks for (`RoutingSpec`), resolved once from the user's routing arguments.

Two ways in, each checking a value once: `resolve_routing` takes arguments that `dydet.cfg.check_args` already checked
(``threshold=`` on the command line or in ``model.predict(...)``) and trusts them; `as_routing` takes a raw value
(``model.routed(x, 0.4)``, ``model(x, threshold=0.4)``) and checks it (`dydet.cfg.check_value`) before resolving it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dydet.cfg import check_value
from dydet.routing.calibration import (
    _met_hard_ratio,
    budget_hard_ratio,
    hard_ratio_for_threshold,
    mean_cost,
    threshold_for_hard_ratio,
)
from dydet.routing.rule import BUDGETS
from dydet.utils.errors import ArgumentError, CheckpointError


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
        """Check the form: exactly one of threshold and route (their values are checked where they come in)."""
        if (self.threshold is None) == (self.route is None):
            raise ValueError("a RoutingSpec needs exactly one of threshold= and route=")

    @classmethod
    def at(cls, threshold: float) -> RoutingSpec:
        """Return the routing at a raw score cut, checked against ``threshold`` in default.yaml."""
        return cls(threshold=check_value("threshold", threshold))

    @classmethod
    def forced(cls, route: str) -> RoutingSpec:
        """Return the routing that sends every image through `route` ('easy' or 'hard'), checked."""
        route = check_value("route", route)
        if route is None:
            raise ArgumentError("route=None forces no route: give route='easy' or route='hard'")
        return cls(route=route, source="route")

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
    """Turn the user's routing arguments, as `dydet.cfg.check_args` checked them, into one `RoutingSpec`.

    Each value is trusted (type and range were checked); what is refused here is what needs the combination or the
    calibration: several routing arguments at once, a budget the routes cannot meet, a calibration-based value on an
    uncalibrated model, a latency budget on another device. Exactly one of `threshold`, `hard_ratio`, `gflops`,
    `latency` may be given (all but `threshold` need a calibration); `route` forces a route and may not be combined
    with them.

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
    given = {
        k: v
        for k, v in (("threshold", threshold), ("hard_ratio", hard_ratio), ("gflops", gflops), ("latency", latency))
        if v is not None
    }
    if route is not None:
        if given:
            raise ArgumentError(f"give either route= or {'/'.join(given)}=, not both (route= forces every image)")
        return RoutingSpec(route=route, source="route")
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
        p = hard_ratio_for_threshold(calibration, value) if calibration else None
        cost = mean_cost(calibration, p) if p is not None else None
        return RoutingSpec(threshold=float(value), source=source, hard_ratio=p, cost=cost)
    if not calibration:
        raise CheckpointError(
            f"{source}= needs a calibrated model and this checkpoint has none: use final.pt (the calibrated model "
            "in the router run's weights/ folder; best.pt and last.pt there are not calibrated), train the router "
            "with 'dydet train stage=2' (which calibrates), or pass threshold= instead"
        )
    budget = None
    if source == "hard_ratio":
        p = float(value)
    else:
        if source == "latency":
            _check_latency_device(calibration, device, precision)
        p = _met_hard_ratio(calibration, budget_hard_ratio(calibration, source, value))
        budget = (source, float(value))
    t = threshold_for_hard_ratio(calibration, p)
    p_met = hard_ratio_for_threshold(calibration, t)
    return RoutingSpec(threshold=t, source=source, hard_ratio=p_met, budget=budget, cost=mean_cost(calibration, p_met))


def as_routing(
    routing: RoutingSpec | float | str | None = None, threshold: float | None = None, route: str | None = None
) -> RoutingSpec | None:
    """Return the `RoutingSpec` of a raw routing value: the one coercion every runner and model entry point uses.

    Args:
        routing (RoutingSpec | float | str, optional): A spec (returned as it is), a score cut, or 'easy' / 'hard'.
        threshold (float, optional): A score cut, as ``model(x, threshold=...)`` takes it.
        route (str, optional): 'easy' or 'hard', as ``model(x, route=...)`` takes it.

    Returns:
        (RoutingSpec | None): The routing; None when nothing was given (the caller's default applies).

    Raises:
        ArgumentError: For a value out of its range, or a threshold and a route at once.
    """
    if isinstance(routing, RoutingSpec):
        return routing
    if isinstance(routing, str):
        route = routing if route is None else route
    elif routing is not None:
        threshold = routing if threshold is None else threshold
    given = {"threshold": threshold, "route": route}
    return resolve_routing(None, **{k: check_value(k, v) for k, v in given.items() if v is not None})
