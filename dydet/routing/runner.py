"""`RoutedRunner`: what can route a batch (a trunk + router, and one tail per route), and its one `routed`.

PyTorch families (`dydet.nn.family.DetectorFamily`), the export runtimes (ONNX Runtime, OpenVINO) and the CUDA-graph
runner (`dydet.utils.cuda_graphs`) implement `run_trunk` and `run_tail`; `routed` is the same for all of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from dydet.routing.batch import Routing, route_batch
from dydet.routing.rule import DEFAULT_THRESHOLD
from dydet.routing.spec import RoutingSpec, as_routing


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


__all__ = ["RoutedRunner"]
