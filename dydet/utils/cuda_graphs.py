"""CUDA graphs of a dynamic model's parts and of static models, for launch-free GPU timing.

Eager batch-1 inference on a GPU is dominated by kernel launches (docs/METHOD.md, "Measuring cost"), so a fair GPU
comparison replays each piece of work as a CUDA graph on static input buffers. A dynamic model is captured in pieces:

- the forced easy route (B1 + H1) and the forced hard route (B1 + B2 + H2), each as one graph;
- the trunk + router (B1 + router) as one graph, whose outputs (the trunk state and the scores) stay in static
  buffers;
- each route's tail (H1; B2 + H2) on those buffers, one graph each per subset size.

The routed path (`RoutedRunner.routed`, as in eager mode) replays the trunk + router and hands the scores to
`route_batch`, which reads the decision back to the host (one synchronisation, as eager routing does); each tail
copies its subset of the trunk state into that subset size's buffers (not needed when the whole batch takes one
route) and replays its graph.
Everything here needs CUDA; nothing runs on import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from dydet.routing import RoutedRunner


def capture(fn: Callable[[], Any], warmup: int = 3) -> tuple[torch.cuda.CUDAGraph, Any]:
    """Warm `fn` up on a side stream, then capture one call of it as a CUDA graph.

    Args:
        fn (Callable[[], Any]): Zero-argument function that reads only static (pre-allocated) CUDA tensors.
        warmup (int): Eager calls before capture (cuDNN algorithm choice, lazy initialisation).

    Returns:
        (tuple): The graph and the output of the captured call (static tensors that each replay overwrites).
    """
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    return graph, out


@contextmanager
def dynamic_heads(model: nn.Module) -> Iterator[None]:
    """Make every Detect head recompute its anchors on each call while capturing.

    A head caches its anchors between calls of the same shape; a graph captured on a warm cache would read a tensor
    that a later eager call of another shape frees. Computing them inside the graph keeps each graph self-contained.
    """
    from ultralytics.nn.modules import Detect

    heads = [m for m in model.modules() if isinstance(m, Detect)]
    saved = [h.dynamic for h in heads]
    for h in heads:
        h.dynamic = True
    try:
        yield
    finally:
        for h, d in zip(heads, saved):
            h.dynamic = d


class StaticModelGraph:
    """A whole static model captured as one CUDA graph for a fixed input shape."""

    def __init__(self, model: nn.Module, x: torch.Tensor):
        """Capture `model(x)`.

        Args:
            model (nn.Module): An eval-mode model on CUDA.
            x (torch.Tensor): An example input; its shape, dtype and device are fixed from now on.
        """
        self.x = torch.zeros_like(x)
        with torch.no_grad(), dynamic_heads(model):
            self.graph, self.out = capture(lambda: model(self.x))

    def __call__(self, x: torch.Tensor) -> Any:
        """Copy `x` into the input buffer and replay; returns the static output."""
        self.x.copy_(x)
        self.graph.replay()
        return self.out


def _leaves(state: Any) -> list:
    """Return the leaves of a nested list/tuple/dict state, in order."""
    if isinstance(state, dict):
        return [t for v in state.values() for t in _leaves(v)]
    if isinstance(state, (list, tuple)):
        return [t for v in state for t in _leaves(v)]
    return [state]


def _batch_buffers(state: Any, m: int) -> Any:
    """Return zero tensors shaped like every tensor in `state` but with batch size `m` (None stays None)."""
    if isinstance(state, torch.Tensor):
        return state.new_zeros((m, *state.shape[1:]))
    if isinstance(state, dict):
        return {k: _batch_buffers(v, m) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_batch_buffers(v, m) for v in state)
    return state


def _copy_subset(dst: Any, src: Any, index: torch.Tensor) -> None:
    """Copy the batch positions `index` of every tensor in `src` into the matching buffer of `dst`."""
    for d, s in zip(_leaves(dst), _leaves(src)):
        if isinstance(s, torch.Tensor):
            d.copy_(s.index_select(0, index))


class DynamicModelGraphs(RoutedRunner):
    """A dynamic model (any `DetectorFamily`) captured in parts for one batch size and image size.

    The parts (see the module docstring) come from the family's public interface: `run_trunk` (trunk + router) and
    `run_tail` (each route's tail). The graphs are a `RoutedRunner` of their own, whose trunk and tails replay the
    captured parts, so that `routed(x, routing)` is the same `RoutedRunner.routed` as in eager mode.

    Attributes:
        n (int): Batch size of the input buffer.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor):
        """Capture the forced routes and the trunk + router, and the tails for the whole batch.

        Args:
            model (nn.Module): An eval-mode dynamic model on CUDA.
            x (torch.Tensor): An example input; its shape, dtype and device are fixed from now on.
        """
        self.model, self.n = model, x.shape[0]
        self.threshold = model.threshold  # the routing of a call given none, as the model's own
        self.x = torch.zeros_like(x)
        self._heads: dict[tuple[str, int], tuple[torch.cuda.CUDAGraph, Any, Any]] = {}
        with torch.no_grad(), dynamic_heads(model):
            self._forced = {
                route: capture(lambda route=route: model.run_tail(route, model.run_trunk(self.x, score=False)[0]))
                for route in ("easy", "hard")
            }
            self._trunk, (self.state, self.score) = capture(lambda: model.run_trunk(self.x))
        for t in _leaves(self.state):
            if t is not None and not isinstance(t, torch.Tensor):
                raise TypeError(f"the trunk outputs a {type(t).__name__}; CUDA graphs need tensors")
        self.prepare(self.n)

    def prepare(self, m: int) -> None:
        """Capture both tails for a subset of `m` images (the whole batch reads the trunk's buffers directly)."""
        for route in ("easy", "hard"):
            if (route, m) in self._heads:
                continue
            state = self.state if m == self.n else _batch_buffers(self.state, m)
            with torch.no_grad(), dynamic_heads(self.model):
                graph, out = capture(lambda route=route, state=state: self.model.run_tail(route, state))
            self._heads[(route, m)] = (graph, out, state)

    def forced(self, route: str, x: torch.Tensor) -> Any:
        """Run every image through one route ('easy' or 'hard'), router skipped."""
        return self.run_tail(route, self.run_trunk(x, score=False)[0])

    def _tail(self, route: str, index: torch.Tensor | None) -> Any:
        """Replay one route's tail on the batch positions `index` (None: the whole batch)."""
        m = self.n if index is None else len(index)
        if (route, m) not in self._heads:
            self.prepare(m)
        graph, out, state = self._heads[(route, m)]
        if index is not None:
            _copy_subset(state, self.state, index)
        graph.replay()
        return out

    def run_trunk(self, x: torch.Tensor, score: bool = True) -> tuple[Any, Any]:
        """Load `x` into the input buffer and replay the trunk + router (unless `score=False`: a route is forced).

        Returns:
            (tuple[Any, Any]): The trunk's static buffers (None when not replayed: each forced graph runs its own
                trunk) and the (n,) scores buffer (None when not scored).
        """
        self.x.copy_(x)
        if not score:
            return None, None
        self._trunk.replay()
        return self.state, self.score

    def run_tail(self, route: str, state: Any, index: torch.Tensor | None = None) -> Any:
        """Replay one route's tail on the batch positions `index` (None: all), or its forced graph (`state` None)."""
        if state is None:
            graph, out = self._forced[route]
            graph.replay()
            return out
        return self._tail(route, index)

    def batch_size(self, x: torch.Tensor) -> int:
        """Return the batch size the graphs were captured for."""
        return self.n
