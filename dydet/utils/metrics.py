"""Metrics of a dynamic model's validation: the routed model's, and each route's, with the per-image records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ultralytics.utils import LOGGER
from ultralytics.utils.metrics import DetMetrics

from dydet.routing import DEFAULT_HARD_RATIO, ROUTES, hard_mask
from dydet.routing.payoff import payoff_warning

# The per-image statistics a validation keeps, for re-scoring the routed model at any routing after the run.
STAT_KEYS = ("tp", "conf", "pred_cls", "target_cls", "target_img")


def hard_by_rank(key: np.ndarray, hard_ratio: float) -> np.ndarray:
    """Send the `round(hard_ratio * N)` images with the lowest `key` to the hard route; return the (N,) bool mask."""
    hard = np.zeros(len(key), dtype=bool)
    hard[np.argsort(key, kind="stable")[: round(hard_ratio * len(key))]] = True
    return hard


class DynamicDetMetrics(DetMetrics):
    """Detection metrics of a dynamic model: the routed model, each route, and per-image records for any routing.

    `box` and the `(B)` keys (`metrics/mAP50-95(B)`, ...) are the *routed* model's, at the routing asked for
    (`threshold`, or a forced `route`; by default the model's own threshold: the calibrated one after stage 2, else
    `DEFAULT_THRESHOLD`), so a script written for Ultralytics reads what it expects. Beside them, `keys` and
    `results_dict` hold the easy route `(E)`, the hard route `(H)` and the router's 50/50 split `(R)`: the half of
    the images with the lowest scores go hard, whatever the threshold (the router's ranking quality in one number).
    `fitness` is the routed model's, `box.fitness()` of the `(B)` metrics (Ultralytics 8.4.190: mAP50-95), as for a
    stock model. The trainers choose `best.pt` by their own criterion (`dydet.engine.trainer.checkpoint_fitness`).

    Attributes:
        routes (dict[str, DetMetrics]): One stock `DetMetrics` per route.
        selected (DetMetrics): The routed (or forced-route) model that `box` and the `(B)` keys report.
        split (DetMetrics): The routed model when the half of the images with the lowest scores go hard.
        threshold (float | None): Score cut of the routing reported as `(B)` (easy if score >= threshold).
        forced_route (str | None): 'easy' or 'hard' when every image was forced through one route, else None.
        routing_text (str): How `(B)` was routed, in words (e.g. 'threshold 0.4312 (calibrated default)').
        route (str): The route whose statistics `update_stats` currently receives.
        stage (int): Training stage of the validated model (selects the trainers' checkpoint criterion).
        images (dict[str, list[dict]]): Per route, the per-image statistics in dataset order (kept after `process`).
        scores (list[float]): The router score of every image, in the same order.
        losses (dict[str, list[float]]): Per route, every image's own detection loss (for the oracle routing).
    """

    SUFFIXES = ("E", "H", "R")  # easy route, hard route, router 50/50 split; beside the routed model's (B)

    def __init__(self, names: dict[int, str] | None = None) -> None:
        """Create empty metrics for both routes."""
        super().__init__(names)
        self.routes = {r: DetMetrics(names) for r in ROUTES}
        self.route = "easy"
        self.stage = 1
        self.images: dict[str, list[dict[str, Any]]] = {r: [] for r in ROUTES}
        self.scores: list[float] = []
        self.losses: dict[str, list[float]] = {r: [] for r in ROUTES}
        self.split = DetMetrics(
            names
        )  # the router's rank split (DEFAULT_HARD_RATIO of the images, lowest scores, go hard)
        self.selected = DetMetrics(names)  # the routed model at `threshold` (or the forced route): `box`, `(B)`
        self.threshold: float | None = None
        self.forced_route: str | None = None
        self.routing_text = ""
        self.coco: dict[str, float] = {}  # official COCO AP per route, when validated with save_json=True

    @property
    def names(self) -> dict[int, str]:
        """Class names, shared by both routes."""
        return self._names

    @names.setter
    def names(self, value: dict[int, str]) -> None:
        self._names = value
        for m in [*getattr(self, "routes", {}).values(), getattr(self, "split", None), getattr(self, "selected", None)]:
            if m is not None:
                m.names = value

    def hard_share(self) -> float:
        """Return the share of images that the routing reported as `(B)` sent to the hard route."""
        if self.forced_route is not None or not self.scores:
            return float(self.forced_route == "hard")
        return float(hard_mask(np.asarray(self.scores), self.threshold).mean())

    def update_stats(self, stat: dict[str, Any]) -> None:
        """Record one image's statistics for the current route."""
        self.routes[self.route].update_stats(stat)
        self.images[self.route].append({k: stat[k] for k in STAT_KEYS})

    def process(self, save_dir: Path = Path("."), plot: bool = False, on_plot=None) -> dict[str, np.ndarray]:
        """Compute both routes' metrics (plots go to `save_dir/easy` and `save_dir/hard`)."""
        out = {}
        for r, m in self.routes.items():
            if plot:
                (save_dir / r).mkdir(parents=True, exist_ok=True)
            out[r] = m.process(save_dir=save_dir / r, plot=plot, on_plot=on_plot)
        complete = self.scores and len(self.scores) == len(self.images["easy"])
        if complete:
            self.split = self.routed(hard_by_rank(np.asarray(self.scores), DEFAULT_HARD_RATIO))
        if self.forced_route is not None:
            self.selected = self.routes[self.forced_route]
        elif complete and self.threshold is not None:
            self.selected = self.routed(hard_mask(np.asarray(self.scores), self.threshold))
        else:  # no per-image records (statistics fed by hand): the hard route, as before routing was reported
            self.selected = self.routes["hard"]
        self.box = self.selected.box
        self.nt_per_class, self.nt_per_image = self.routes["hard"].nt_per_class, self.routes["hard"].nt_per_image
        return out

    def clear_stats(self) -> None:
        """Clear the accumulated statistics of both routes (per-image records are kept until `reset`)."""
        for m in self.routes.values():
            m.clear_stats()

    def clear_image_metrics(self) -> None:
        """Clear per-image metrics of both routes."""
        for m in self.routes.values():
            m.clear_image_metrics()

    def reset(self) -> None:
        """Forget all per-image records (start of a validation run)."""
        self.images = {r: [] for r in ROUTES}
        self.scores = []
        self.losses = {r: [] for r in ROUTES}
        self.coco = {}

    @property
    def keys(self) -> list[str]:
        """Metric keys: the routed model `(B)`, the easy route `(E)`, the hard route `(H)`, the 50/50 split `(R)`."""
        base = super().keys
        return [*base, *(k.replace("(B)", f"({s})") for s in self.SUFFIXES for k in base)]

    def mean_results(self) -> list[float]:
        """Return P, R, mAP50, mAP50-95 of the routed model, the easy route, the hard route and the 50/50 split."""
        return [v for m in (self.selected, *self.routes.values(), self.split) for v in m.mean_results()]

    @property
    def results_dict(self) -> dict[str, float]:
        """Return every route's metrics, the fitness and, after `save_json=True`, the official COCO AP per route."""
        return {**super().results_dict, **self.coco}

    def routed(self, hard: np.ndarray) -> DetMetrics:
        """Return metrics for a routing decision: image i counted with its hard-route predictions where `hard[i]`.

        Args:
            hard (np.ndarray): (N,) bool per validation image, in dataset order.

        Returns:
            (DetMetrics): Processed metrics of the routed model.
        """
        m = DetMetrics(self.names)
        for i, is_hard in enumerate(hard):
            for k in STAT_KEYS:
                m.stats[k].append(self.images["hard" if is_hard else "easy"][i][k])
        m.process()
        return m


def report_payoff(metrics: Any, where: str) -> str | None:
    """Log one warning line when a validation run shows that routing does not pay (`dydet.routing.payoff`).

    Args:
        metrics (Any): The run's `DynamicDetMetrics` (anything else, e.g. a stored metrics dict, is ignored).
        where (str): Where the figures come from, for the message.

    Returns:
        (str | None): The warning logged, or None.
    """
    routes = getattr(metrics, "routes", None)
    if not routes or not getattr(metrics, "images", {}).get("easy"):
        return None
    half = min(getattr(metrics, "tradeoff", None) or [], key=lambda row: abs(row["hard_ratio"] - 0.5), default=None)
    router, random = (half["mAP50-95"], half["random_mAP50-95"]) if half else (None, None)
    warning = payoff_warning(
        routes["easy"].mean_results()[3], routes["hard"].mean_results()[3], router, random, where=where
    )
    if warning:
        LOGGER.warning(warning)
    return warning
