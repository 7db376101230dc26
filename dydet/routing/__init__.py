"""The routing core, the same for every detector family and runtime (PyTorch, CUDA graphs, ONNX).

It owns:

- the route names (`ROUTES`) and the routing rule (`hard_mask`: easy if score >= threshold, 1 sends all hard);
- the routing value a caller asks for (`RoutingSpec`: a score cut or a forced route), resolved once from
  `threshold=` / `hard_ratio=` / `route=` / `gflops=` / `latency=` by `resolve_routing` (arguments `dydet.cfg`
  checked) or `as_routing` (a raw value, checked there);
- the hard-ratio <-> threshold rule of a calibration and the paper's budget rule (Eq. 14);
- `route_batch`: split a batch by the rule, run each route's tail on its subset only, merge the outputs back in batch
  order, and return them with the record of what happened (`Routing`).

- `RoutedRunner`: the one `routed` of every runner (PyTorch families, export runtimes, CUDA graphs), on top of the
  runner's `run_trunk` / `run_tail` hooks.

A family (see `dydet.nn.family`) only supplies its trunk + router and its two tails; nothing here knows about layers.
"""

from dydet.routing.batch import Routing, merge, route_batch, take
from dydet.routing.calibration import (
    budget_hard_ratio,
    hard_ratio_for_threshold,
    mean_cost,
    route_costs,
    threshold_for_hard_ratio,
)
from dydet.routing.rule import (
    BUDGETS,
    DEFAULT_HARD_RATIO,
    DEFAULT_THRESHOLD,
    ROUTES,
    check_hard_ratio,
    check_route,
    check_threshold,
    hard_mask,
)
from dydet.routing.runner import RoutedRunner
from dydet.routing.spec import RoutingSpec, as_routing, resolve_routing

__all__ = [
    "BUDGETS",
    "DEFAULT_HARD_RATIO",
    "DEFAULT_THRESHOLD",
    "ROUTES",
    "RoutedRunner",
    "Routing",
    "RoutingSpec",
    "as_routing",
    "budget_hard_ratio",
    "check_hard_ratio",
    "check_route",
    "check_threshold",
    "hard_mask",
    "hard_ratio_for_threshold",
    "mean_cost",
    "merge",
    "resolve_routing",
    "route_batch",
    "route_costs",
    "take",
    "threshold_for_hard_ratio",
]
