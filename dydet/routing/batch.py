"""Split-run-merge: route a batch by the rule, run each route's tail on its images only, merge back in order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dydet.routing.rule import hard_mask
from dydet.routing.spec import RoutingSpec, as_routing


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
    spec = as_routing(routing)
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
