"""CUDA graphs of a dynamic model's parts and of static models, for launch-free GPU timing.

Eager batch-1 inference on a GPU is dominated by kernel launches (docs/METHOD.md, "Measuring cost"), so a fair GPU
comparison replays each piece of work as a CUDA graph on static input buffers. A dynamic model is captured in pieces:

- the forced easy route (B1 + H1) and the forced hard route (B1 + B2 + H2), each as one graph;
- B1 + router as one graph, whose outputs (B1's saved features and the scores) stay in static buffers;
- H1 and H2 on those buffers, one graph each per subset size.

The routed path replays B1 + router, reads the decision back to the host (one synchronisation, as eager routing does),
copies each route's subset of B1's features into that subset size's buffers (not needed when the whole batch takes
one route) and replays the chosen head graphs. Everything here needs CUDA; nothing runs on import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


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


class DynamicModelGraphs:
    """A `DynamicDetectionModel` captured in parts (see the module docstring) for one batch size and image size.

    Attributes:
        n (int): Batch size of the input buffer.
        last_hard (torch.Tensor | None): (n,) bool on the CPU, the routes of the last routed call.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor):
        """Capture the forced routes and B1 + router, and the heads for the whole batch.

        Args:
            model (nn.Module): An eval-mode `DynamicDetectionModel` on CUDA.
            x (torch.Tensor): An example input; its shape, dtype and device are fixed from now on.
        """
        self.model, self.n, self.last_hard = model, x.shape[0], None
        self.x = torch.zeros_like(x)
        g = model.graph
        self._b1 = list(g.b1)
        self._heads: dict[tuple[str, int], tuple[torch.cuda.CUDAGraph, Any, list]] = {}
        with torch.no_grad(), dynamic_heads(model):
            self._forced = {
                "easy": capture(lambda: model._run(g.easy, None, model._run_b1(self.x))),
                "hard": capture(lambda: model._run(g.hard, None, model._run_b1(self.x))),
            }

            def b1_router():
                y = model._run_b1(self.x)
                return y, model._score(y)

            self._b1r, (self.y, self.score) = capture(b1_router)
        for i in self._b1:
            if self.y[i] is not None and not isinstance(self.y[i], torch.Tensor):
                raise TypeError(f"B1 layer {i} outputs {type(self.y[i]).__name__}; CUDA graphs need tensors")
        self.prepare(self.n)

    def prepare(self, m: int) -> None:
        """Capture H1 and H2 for a subset of `m` images (the whole batch reads B1 + router's buffers directly)."""
        g = self.model.graph
        for route, layers in (("easy", g.easy), ("hard", g.hard)):
            if (route, m) in self._heads:
                continue
            if m == self.n:
                y = list(self.y)  # a copy of the list: each head writes its own outputs into it
            else:
                y = [None] * len(self.y)
                for i in self._b1:
                    if self.y[i] is not None:
                        y[i] = self.y[i].new_zeros((m, *self.y[i].shape[1:]))
            with torch.no_grad(), dynamic_heads(self.model):
                graph, out = capture(lambda layers=layers, y=y: self.model._run(layers, None, y))
            self._heads[(route, m)] = (graph, out, y)

    def forced(self, route: str, x: torch.Tensor) -> Any:
        """Run every image through one route ('easy' or 'hard'), router skipped."""
        self.x.copy_(x)
        graph, out = self._forced[route]
        graph.replay()
        return out

    def _head(self, route: str, m: int, index: torch.Tensor | None) -> Any:
        if (route, m) not in self._heads:
            self.prepare(m)
        graph, out, y = self._heads[(route, m)]
        if index is not None:
            for i in self._b1:
                if y[i] is not None:
                    y[i].copy_(self.y[i].index_select(0, index))
        graph.replay()
        return out

    def routed(self, x: torch.Tensor, threshold: float) -> Any:
        """Route like `model(x, threshold=threshold)`: B1 + router, the decision read back, then the chosen heads.

        Args:
            x (torch.Tensor): (n, C, H, W) input.
            threshold (float): Score cut in [0, 1]; easy if score >= threshold, 1 sends everything hard.

        Returns:
            (Any): The heads' eval output in batch order (static buffers when the whole batch takes one route).
        """
        from dydet.nn.modules import hard_mask
        from dydet.nn.tasks import _merge

        self.x.copy_(x)
        self._b1r.replay()
        hard = hard_mask(self.score, threshold)
        mask = hard.cpu()  # the one host synchronisation: the router's decision read back
        self.last_hard = mask
        k = int(mask.sum())
        if k == 0:
            return self._head("easy", self.n, None)
        if k == self.n:
            return self._head("hard", self.n, None)
        dev = self.x.device
        hard_idx = mask.nonzero().flatten().to(dev, non_blocking=True)
        easy_idx = (~mask).nonzero().flatten().to(dev, non_blocking=True)
        easy = self._head("easy", self.n - k, easy_idx)
        hard_out = self._head("hard", k, hard_idx)
        return _merge(easy, hard_out, easy_idx, hard_idx, self.n)
