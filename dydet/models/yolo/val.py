"""Per-route validation: every image goes through both routes once; metrics for each route, and any routing, follow."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from ultralytics.cfg import get_cfg
from ultralytics.models.yolo.detect import DetectionValidator
from ultralytics.utils import DEFAULT_CFG, LOGGER
from ultralytics.utils.metrics import ConfusionMatrix, DetMetrics

from dydet.engine.routing import DEFAULT_HARD_RATIO, ROUTES, RoutingSpec, hard_mask
from dydet.utils.files import claim_save_dir
from dydet.utils.preprocess import prediction_scores

STAT_KEYS = ("tp", "conf", "pred_cls", "target_cls", "target_img")


class BothRoutes(nn.Module):
    """Adapter that makes a dynamic model answer `model(x)` with both routes' eval outputs and the router scores.

    Ultralytics' validator and AutoBackend call `model(images)`; this keeps that call unchanged while the validator
    needs every image through both routes. Attributes the validator reads (names, stride, yaml, loss, ...) are the
    wrapped model's.
    """

    def __init__(self, model: nn.Module):
        """Wrap a `DynamicDetectionModel`."""
        super().__init__()
        self.net = model

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["net"], name)

    @property
    def end2end(self) -> bool:
        """Whether both heads give NMS-free one-to-one outputs (YOLO26 with `nms=False`); set on the wrapped model."""
        return self._modules["net"].end2end

    @end2end.setter
    def end2end(self, value: bool) -> None:
        self._modules["net"].end2end = value

    def forward(self, x: torch.Tensor, *args, **kwargs) -> dict[str, Any]:
        """Return `{"easy": (y, raw), "hard": (y, raw), "score": (B,)}` for a batch in eval mode."""
        return self.net.forward_both(x)

    def fuse(self, verbose: bool = True) -> BothRoutes:
        """Fuse the wrapped model in place and return this adapter (AutoBackend keeps what fuse returns)."""
        self.net.fuse(verbose=verbose)
        return self


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
    `fitness` is the mean of both routes' fitness in stage 1 (the best checkpoint has both routes good) and the
    split's fitness in stage 2 (the best checkpoint has the best router).

    Attributes:
        routes (dict[str, DetMetrics]): One stock `DetMetrics` per route.
        selected (DetMetrics): The routed (or forced-route) model that `box` and the `(B)` keys report.
        split (DetMetrics): The routed model when the half of the images with the lowest scores go hard.
        threshold (float | None): Score cut of the routing reported as `(B)` (easy if score >= threshold).
        forced_route (str | None): 'easy' or 'hard' when every image was forced through one route, else None.
        routing_text (str): How `(B)` was routed, in words (e.g. 'threshold 0.4312 (calibrated default)').
        route (str): The route whose statistics `update_stats` currently receives.
        stage (int): Training stage of the validated model (selects the fitness).
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
    def fitness(self) -> float:
        """Stage 1: mean of both routes' fitness (0.1 mAP50 + 0.9 mAP50-95); stage 2: the 50/50 split's fitness."""
        if self.stage >= 2:
            return float(self.split.fitness)
        return float(np.mean([self.routes[r].fitness for r in ROUTES]))

    @property
    def results_dict(self) -> dict[str, float]:
        """Return every route's metrics, the fitness and, after `save_json=True`, the official COCO AP per route."""
        return {**super().results_dict, **self.coco}

    def route_results(self, route: str) -> dict[str, float]:
        """Return one route's results as `{"precision", "recall", "mAP50", "mAP50-95"}`."""
        return dict(zip(("precision", "recall", "mAP50", "mAP50-95"), self.routes[route].mean_results()))

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


class DynamicValidator(DetectionValidator):
    """Validator that runs both routes on every image and reports the routed model and each route.

    Attributes:
        routing (RoutingSpec | None): The routing whose metrics are reported as `(B)` (a threshold or a forced route);
            None: the model's own threshold.
    """

    def __init__(
        self, dataloader=None, save_dir=None, args=None, _callbacks=None, routing: RoutingSpec | None = None
    ) -> None:
        """Create the validator (`DetectionValidator`'s arguments, plus the routing to report as `(B)`).

        A standalone validation claims its output folder atomically (`claim_save_dir`); in training the trainer's.
        """
        if save_dir is None:
            save_dir = claim_save_dir(get_cfg(DEFAULT_CFG, args))
        super().__init__(dataloader, save_dir, args, _callbacks)
        self.metrics = DynamicDetMetrics()
        self.jdicts: dict[str, list] = {r: [] for r in ROUTES}
        self.routing = routing

    def get_model(self, model, trainer=None):
        """Return the model wrapped so that a plain forward gives both routes."""
        from dydet.utils.checkpoint import checkpoint_model, load_checkpoint_dict, require_dynamic

        model = super().get_model(model, trainer)
        if isinstance(model, (str, Path)):
            source = model
            model = checkpoint_model(load_checkpoint_dict(source))
            require_dynamic(model, source)
        model = model if isinstance(model, BothRoutes) else BothRoutes(model)
        self.metrics.stage = model.net.stage
        self._set_routing(model.net)
        self._net, self._route_loss = model.net, None
        return model

    def _set_routing(self, net: nn.Module) -> None:
        """Tell the metrics which routing their `(B)` keys report, and describe it for the results table."""
        m, spec = self.metrics, self.routing
        m.forced_route, m.threshold = (spec.route if spec is not None else None), None
        if m.forced_route is not None:
            m.routing_text = f"{m.forced_route} route (forced)"
        elif spec is not None:
            m.threshold, m.routing_text = float(spec.threshold), f"threshold {spec.threshold:.4f}"
        else:
            m.threshold = float(net.threshold)
            default = "calibrated default" if getattr(net, "calibration", None) else "model's default, not calibrated"
            m.routing_text = f"threshold {m.threshold:.4f} ({default})"

    def dynamic_model(self) -> nn.Module:
        """Return the dynamic model being validated (as placed on the device by the last run)."""
        return self._net

    def sample_images(self, n: int) -> list[torch.Tensor]:
        """Return up to `n` validation images as (1, 3, H, W) tensors on the device, for latency measurement."""
        dataset = self.dataloader.dataset
        dtype = next(self._net.parameters()).dtype
        return [(dataset[i]["img"][None].to(self.device, dtype) / 255) for i in range(min(n, len(dataset)))]

    def route_losses(self, preds: dict[str, Any], batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image detection losses of both routes (for the oracle), with a criterion built on first use."""
        if self._route_loss is None:
            from ultralytics.cfg import get_cfg

            from dydet.utils.loss import RouterLoss

            if not hasattr(self._net.args, "box"):  # a loaded checkpoint keeps its args as a plain dict
                self._net.args = get_cfg(overrides={k: v for k, v in dict(self._net.args).items() if k != "cfg"})
            self._route_loss = RouterLoss(self._net)
        return self._route_loss.route_losses(preds, batch)

    def get_desc(self) -> str:
        """Return the header of the per-route results table."""
        return ("%22s" + "%11s" * 6) % ("Route", "Images", "Instances", "Box(P", "R", "mAP50", "mAP50-95)")

    def init_metrics(self, model: nn.Module) -> None:
        """Initialise stock metrics plus one confusion matrix and one prediction list per route."""
        super().init_metrics(model)
        self.metrics.reset()
        self.confusion_matrices = {r: ConfusionMatrix(names=model.names) for r in ROUTES}
        self.jdicts = {r: [] for r in ROUTES}
        self.is_custom_json = self.build_gdict = False  # dydet scores COCO json itself (dydet/utils/coco.py)

    def postprocess(self, preds: dict[str, Any]) -> dict[str, Any]:
        """Apply NMS to each route's predictions."""
        return {
            "raw": preds,
            "score": preds["score"],
            "easy": super().postprocess(preds["easy"]),
            "hard": super().postprocess(preds["hard"]),
        }

    @contextmanager
    def _as_route(self, route: str):
        """Make the stock per-image bookkeeping write into `route`'s metrics, confusion matrix and JSON list.

        The stock `update_metrics` writes into `self.metrics`, `self.confusion_matrix` and `self.jdict`; inside this
        context they are `route`'s sinks, and the validator's own attributes are restored on exit.
        """
        saved = self.metrics.route, self.confusion_matrix, self.jdict
        self.metrics.route = route
        self.confusion_matrix, self.jdict = self.confusion_matrices[route], self.jdicts[route]
        try:
            yield
        finally:
            self.metrics.route, self.confusion_matrix, self.jdict = saved

    def update_metrics(self, preds: dict[str, Any], batch: dict[str, Any]) -> None:
        """Update both routes' metrics for a batch and record the router scores.

        The scores are taken on the images as `predict` letterboxes them (`prediction_scores`), not on the validator's
        padded rectangular batches, so thresholds calibrated on them route predicted images as promised.
        """
        self.metrics.scores.extend(prediction_scores(self._net, batch["im_file"], self.args.imgsz))
        for route, loss in zip(ROUTES, self.route_losses(preds["raw"], batch)):
            self.metrics.losses[route].extend(loss.cpu().tolist())
        seen = self.seen
        for route in ROUTES:
            self.seen = seen
            with self._as_route(route):
                super().update_metrics(preds[route], batch)

    def plot_predictions(self, batch: dict[str, Any], preds: dict[str, Any], ni: int, max_det=None) -> None:
        """Plot each route's predictions into `save_dir/<route>/val_batch{ni}_pred.jpg`."""
        save_dir = self.save_dir
        for route in ROUTES:
            self.save_dir = save_dir / route  # the file name is fixed before the threaded plot starts
            self.save_dir.mkdir(parents=True, exist_ok=True)
            super().plot_predictions(batch, preds[route], ni, max_det)
        self.save_dir = save_dir

    def get_stats(self) -> dict[str, Any]:
        """Compute both routes' metrics and return them keyed by route."""
        self.metrics.process(save_dir=self.save_dir, plot=self.args.plots, on_plot=self.on_plot)
        stats = self.metrics.results_dict
        self.metrics.clear_stats()
        return stats

    def finalize_metrics(self) -> None:
        """Plot each route's confusion matrix under `save_dir/<route>/`."""
        if self.args.plots:
            for route, matrix in self.confusion_matrices.items():
                (self.save_dir / route).mkdir(parents=True, exist_ok=True)
                for normalize in True, False:
                    matrix.plot(save_dir=self.save_dir / route, normalize=normalize, on_plot=self.on_plot)
        # the stock loop writes `predictions.json` (the hard route's) and scores JSON only if `self.jdict` has entries
        self.jdict = self.jdicts["hard"] or self.jdicts["easy"]
        self.metrics.speed = self.speed
        self.metrics.confusion_matrix = self.confusion_matrix = self.confusion_matrices["hard"]
        self.metrics.save_dir = self.save_dir

    def _result_rows(self) -> list[tuple[str, DetMetrics]]:
        """Return the (name, metrics) rows of the results table: the routed model, each route, the 50/50 split."""
        m = self.metrics
        routed = f"routed ({m.hard_share():.0%} hard)" if m.forced_route is None else f"{m.forced_route} (forced)"
        return [(routed, m.selected)] + [(f"{r} route", m.routes[r]) for r in ROUTES] + [("router 50/50", m.split)]

    def print_results(self) -> None:
        """Print one row per route under the routed model's row; with `verbose`, each route's per-class table."""
        pf = "%22s" + "%11i" * 2 + "%11.3g" * 4
        LOGGER.info(f"Routed model (B): {self.metrics.routing_text}")
        for name, m in self._result_rows():
            nt = m.nt_per_class.sum() if m.nt_per_class is not None else 0
            LOGGER.info(pf % (name, self.seen, nt, *m.mean_results()))
        if self.metrics.routes["hard"].nt_per_class is not None and self.metrics.routes["hard"].nt_per_class.sum() == 0:
            LOGGER.warning(f"no labels found in {self.args.task} set, cannot compute metrics without labels")
            return
        if self.args.verbose and not self.training and self.nc > 1:  # as Ultralytics: per class, once per row
            for name, m in self._result_rows()[:3]:
                LOGGER.info(f"Per class, {name}:\n{self.get_desc()}")
                LOGGER.info(pf % ("all", self.seen, m.nt_per_class.sum(), *m.mean_results()))
                for i, c in enumerate(m.ap_class_index):
                    LOGGER.info(pf % (self.names[c], m.nt_per_image[c], m.nt_per_class[c], *m.class_result(i)))

    def eval_json(self, stats: dict[str, Any]) -> dict[str, Any]:
        """Write each route's COCO-format predictions and score them with pycocotools."""
        from dydet.utils.coco import evaluate_routes_json

        return evaluate_routes_json(self, stats)
