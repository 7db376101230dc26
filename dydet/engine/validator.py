"""Per-route validation: every image goes through both routes once; metrics for each route, and any routing, follow."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn
from ultralytics.cfg import get_cfg
from ultralytics.models.yolo.detect import DetectionValidator
from ultralytics.utils import DEFAULT_CFG, LOGGER
from ultralytics.utils.metrics import ConfusionMatrix, DetMetrics

from dydet.engine.distributed import validating_alone
from dydet.nn.checkpoint import checkpoint_model, load_checkpoint_dict, require_dynamic
from dydet.routing import ROUTES, RoutingSpec
from dydet.utils.coco import evaluate_routes_json
from dydet.utils.files import claim_save_dir
from dydet.utils.logs import BANNER, dropping
from dydet.utils.metrics import DynamicDetMetrics
from dydet.utils.preprocess import prediction_scores

# the fused model's summary AutoBackend prints on loading (`DynamicDetectionModel.info`)
MODEL_SUMMARY = (r"\S+ summary \(fused\): ", r"\s*(easy|hard|router):\s+[\d,]+ parameters ")
DATA_ACCESS = r"(train|val): Fast image access"  # Ultralytics' read-speed check of a split
# what a validation whose caller reports it (the calibration) need not say: how fast it reads the split, its speed
DATA_LINES = (DATA_ACCESS, r"Speed: ")


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


class RoutedValidator(DetectionValidator):
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
        self.print_table = True  # False: the caller reports the validation itself (the calibration's trade-off)

    def get_model(self, model, trainer=None):
        """Return the model wrapped so that a plain forward gives both routes."""
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
        """Return every image's own detection loss through each route (for the oracle routing): the family's."""
        raise NotImplementedError(f"{type(self).__name__} does not compute per-image route losses")

    def get_desc(self) -> str:
        """Return the header of the per-route results table."""
        return ("%22s" + "%11s" * 6) % ("Route", "Images", "Instances", "Box(P", "R", "mAP50", "mAP50-95)")

    def class_desc(self) -> str:
        """Return the header of a per-class results table."""
        return ("%22s" + "%11s" * 6) % ("Class", "Images", "Instances", "Box(P", "R", "mAP50", "mAP50-95)")

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

    def __call__(self, trainer=None, model=None, **kwargs):
        """Validate as Ultralytics does; a process of a group on the CPU validating by itself too.

        Without `verbose` (a training run's final validations, the calibration), loading the model prints neither the
        Ultralytics banner nor the fused model's summary again; without a results table (`print_table`), neither how
        fast it reads the split nor its speed.
        """
        quiet = trainer is None and not self.args.verbose
        lines = (BANNER, *MODEL_SUMMARY, *(() if self.print_table else DATA_LINES))
        with nullcontext() if trainer is not None else validating_alone(self.args.device):
            with dropping(lines, active=quiet):
                return super().__call__(trainer, model, **kwargs)

    def gather_stats(self) -> None:
        """Keep this process's statistics: every process of a group validates the whole split (none to gather).

        Ultralytics' gather would merge only the stock statistics (the routes keep theirs) and is a collective, which a
        validation that rank 0 runs alone (calibration) would wait on forever.
        """

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

    def _epoch_rows(self) -> list[tuple[str, DetMetrics]]:
        """Return the rows a validation between training epochs prints: what the stage trains.

        Stage 1 trains both routes (the router and the threshold are placeholders until stage 2); stage 2 trains the
        router alone (both routes are frozen, their rows would repeat), judged by its 50/50 rank split.
        """
        rows = self._result_rows()
        return rows[3:] if self.metrics.stage >= 2 else rows[1:3]

    def print_results(self) -> None:
        """Print the routed model's row and one row per route; with `verbose`, per-class tables (not between epochs).

        Between training epochs only the rows of what the stage trains (`_epoch_rows`).
        """
        if not (self.print_table or self.training):
            return
        pf = "%22s" + "%11i" * 2 + "%11.3g" * 4
        if not self.training:
            LOGGER.info(f"Routed model (B): {self.metrics.routing_text}")
        for name, m in self._epoch_rows() if self.training else self._result_rows():
            nt = m.nt_per_class.sum() if m.nt_per_class is not None else 0
            LOGGER.info(pf % (name, self.seen, nt, *m.mean_results()))
        if self.metrics.routes["hard"].nt_per_class is not None and self.metrics.routes["hard"].nt_per_class.sum() == 0:
            LOGGER.warning(f"no labels found in {self.args.task} set, cannot compute metrics without labels")
            return
        if self.args.verbose and not self.training and self.nc > 1:
            for name, m in self._result_rows()[:3]:  # as Ultralytics: per class, for the routed model and each route
                LOGGER.info(f"Per class, {name}:\n{self.class_desc()}")
                LOGGER.info(pf % ("all", self.seen, m.nt_per_class.sum(), *m.mean_results()))
                for i, c in enumerate(m.ap_class_index):
                    LOGGER.info(pf % (self.names[c], m.nt_per_image[c], m.nt_per_class[c], *m.class_result(i)))

    def eval_json(self, stats: dict[str, Any]) -> dict[str, Any]:
        """Write each route's COCO-format predictions and score them with pycocotools."""
        return evaluate_routes_json(self, stats)
