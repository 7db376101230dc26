"""What a dynamic detector family is to the rest of dydet: a shared trunk + router, and one tail per route.

The router trainer, calibration, per-route validator, trade-off table, predictor, benchmark and exporter drive a
model only through this interface, so a new family (e.g. a two-stage detector) plugs in by implementing it. What is
truly family-specific (the per-image detection loss, graph splitting for export) stays behind the family's methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch

from dydet.routing import DEFAULT_THRESHOLD, Routing, RoutingSpec, as_routing, route_batch


class RoutedRunner(ABC):
    """Anything that can run a trunk + router on a batch and each route's tail on a subset, and so can route.

    Implemented by the PyTorch families and by the exported runtimes (ONNX); `routed` is the same for all of them:
    it hands the scores and the two tails to `dydet.routing.route_batch`.

    Attributes:
        threshold (float): Default score cut when a call is not given a routing.
    """

    threshold: float = DEFAULT_THRESHOLD

    @abstractmethod
    def run_trunk(self, x: Any, score: bool = True) -> tuple[Any, Any]:
        """Run the shared trunk (and the router unless `score=False`) on a batch.

        Args:
            x (Any): (B, C, H, W) images.
            score (bool): Also run the router; False when a route is forced.

        Returns:
            (tuple[Any, Any]): The trunk state the tails read, and the (B,) easiness scores (None if not scored).
        """

    @abstractmethod
    def run_tail(self, route: str, state: Any, index: Any = None) -> Any:
        """Run one route's tail ('easy' or 'hard') on the trunk state, restricted to batch positions `index`.

        Args:
            route (str): 'easy' or 'hard'.
            state (Any): What `run_trunk` returned for the batch.
            index (Any, optional): Batch positions to run (None: the whole batch).

        Returns:
            (Any): The route's detection output for those images, in `index` order.
        """

    def default_routing(self) -> RoutingSpec:
        """Return the routing used when a call is given none: the score cut `self.threshold`."""
        return RoutingSpec(threshold=self.threshold, source="default")

    def batch_size(self, x: Any) -> int:
        """Return the number of images in a batch."""
        return int(x.shape[0])

    def routed(self, x: Any, routing: RoutingSpec | float | None = None) -> tuple[Any, Routing]:
        """Route every image of a batch and run only what its route needs; return the outputs and the record.

        Args:
            x (Any): (B, C, H, W) images.
            routing (RoutingSpec | float, optional): The routing (a spec, or a raw score cut); None uses
                `default_routing()`.

        Returns:
            (tuple[Any, Routing]): The detection output in the original image order, and which route each image took.
        """
        spec = as_routing(routing) or self.default_routing()
        state, scores = self.run_trunk(x, score=spec.route is None)
        out, record = route_batch(
            scores,
            spec,
            lambda index: self.run_tail("easy", state, index),
            lambda index: self.run_tail("hard", state, index),
            batch_size=self.batch_size(x),
        )
        return self.finish_routed(state, out), record

    def finish_routed(self, state: Any, out: Any) -> Any:
        """Return the detection output of a routed batch from the merged tails' output (the hook after routing).

        A family whose tails end before its shared last stage runs that stage here, once for the whole batch (R-CNN:
        the tails give each image's backbone features, and one FPN + RPN + RoI head pass detects on all of them).

        Args:
            state (Any): What `run_trunk` returned for the batch.
            out (Any): The tails' outputs merged back in batch order.

        Returns:
            (Any): The detection output; by default `out` itself.
        """
        return out


class DetectorFamily(RoutedRunner):
    """A trainable dynamic detector family (a PyTorch model), as the training, validation and reporting code see it.

    Attributes:
        calibration (dict | None): Router scores on the validation split and per-route costs, set by calibration.
        stage (int): Training stage reached: 0 untrained, 1 cascade (both routes), 2 router trained.
    """

    calibration: dict | None = None
    stage: int = 0
    # Why this family cannot be exported, in one line; None: it can (split graphs, `dydet.engine.exporter`).
    export_refusal: str | None = None
    # Whether `load` and `check_pretrained` read the family's own pretrained files (R-CNN: torchvision state dicts)
    # rather than dydet / Ultralytics detection checkpoints, which the training code then loads itself.
    own_pretrained: bool = False

    def train_defaults(self) -> dict[str, Any]:
        """Return training arguments this family defaults to (a value the user gives wins); none by default."""
        return {}

    def check_pretrained(self, path: str | Path) -> None:
        """Refuse early, with a one-line error, a `pretrained=` file of the family's own kind that it cannot use.

        Called only when `own_pretrained` is True; the default accepts any file.
        """

    @abstractmethod
    def forward_both(self, x: torch.Tensor) -> dict[str, Any]:
        """Run both routes on every image: `{"easy": ..., "hard": ..., "score": (B,)}` (training, validation)."""

    @abstractmethod
    def route_summary(self, imgsz: int | list[int] = 640) -> dict[str, dict[str, float]]:
        """Return `{"easy" | "hard" | "router": {"params", "gflops"}}` per image at `imgsz`."""

    @abstractmethod
    def init_criterion(self):
        """Return the loss of the stage being trained (both routes' detection losses, or the router loss)."""

    def router_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Return the (B,) easiness scores of a batch, running the trunk and the router only."""
        return self.run_trunk(x)[1]
