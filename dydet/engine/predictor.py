"""Prediction with per-image routing: every `Results` carries the route its image took and its router score."""

from __future__ import annotations

import contextlib
import errno
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch
from ultralytics.engine.results import Results
from ultralytics.models.yolo.detect import DetectionPredictor
from ultralytics.utils import LOGGER

from dydet.nn.checkpoint import load_checkpoint
from dydet.routing import ROUTES, Routing, RoutingSpec
from dydet.utils.checkpoint import atomic_write_bytes, write_error
from dydet.utils.errors import WriteError
from dydet.utils.files import claim_save_dir
from dydet.utils.preprocess import preprocess_images

# BGR; the same hues as the route curves in dydet.utils.plotting (tab:blue easy, tab:red hard)
ROUTE_COLORS = {"easy": (180, 119, 31), "hard": (40, 39, 214)}


def route_label(route: str, score: float | None) -> str:
    """Return the banner text for an image: `'hard, easiness 0.31'`, or `'hard (forced)'` when the route was forced.

    The router's score is an easiness score (high: the easy route is enough), so it is named: a bare number beside
    'hard' would read as a hardness.
    """
    return f"{route}, easiness {score:.2f}" if score is not None else f"{route} (forced)"


def draw_route_banner(im: np.ndarray, route: str, score: float | None, line_width: int | None = None) -> np.ndarray:
    """Draw a filled top-left banner with the route and router score, in the route's color.

    Args:
        im (np.ndarray): BGR image (H, W, 3), e.g. from `Results.plot()`; drawn on in place when writable.
        route (str): 'easy' or 'hard'.
        score (float | None): Router easiness score, None when the route was forced.
        line_width (int, optional): Box line width the image was plotted with (sets the text size).

    Returns:
        (np.ndarray): The image with the banner.

    Examples:
        >>> im = draw_route_banner(result.plot(), result.route, result.score)
    """
    if not im.flags.writeable or not im.flags.c_contiguous:
        im = np.ascontiguousarray(im).copy()
    h, w = im.shape[:2]
    lw = line_width or max(round((h + w) / 2 * 0.003), 2)  # Annotator's default line width
    thickness, scale, pad = max(lw - 1, 1), lw / 3, max(lw, 2)
    text = route_label(route, score)
    tw = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0]
    if tw + 2 * pad > 0.6 * w:  # small images: keep the banner to about half the width
        scale = max(scale * (0.6 * w - 2 * pad) / tw, 0.25)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    color = ROUTE_COLORS.get(route, (128, 128, 128))
    cv2.rectangle(im, (0, 0), (tw + 2 * pad, th + base + 2 * pad), color, -1)
    cv2.putText(im, text, (pad, pad + th), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return im


class RoutedPreds(NamedTuple):
    """A batch's raw predictions together with the record of how it was routed (what `inference` returns)."""

    preds: Any
    routing: Routing


class RoutedPredictor(DetectionPredictor):
    """Detection predictor for dynamic models.

    Each batch is routed per image by the model with the routing given to the call
    (`predictor(source, routing=RoutingSpec(...))`; None: the model's own default), through the family's `routed`,
    which returns the batch's `Routing` record with the predictions. The resulting `Results` get two extra
    attributes, `route` ('easy' | 'hard') and `score` (router easiness score, None when a route was forced). Saved and
    shown images carry a top-left banner with the route and score (see `draw_route_banner`); text labels (`save_txt`)
    are the stock ones. With `verbose`, a summary line at the end gives the share routed hard and the routing's mean
    cost per image on the calibration split (and the budget it meets, when one was asked). The per-image log line says
    the route and score before the time (`160x160 2 circles, hard, easiness 0.31, 5.1ms`). With a tracker
    (`DynamicYOLO.track`), the tracked `Results` keep their route and score.

    Attributes:
        routed_images (dict[str, int]): Images sent each way by the current call.
    """

    _banner_result: Results | None = None
    routed_images: dict[str, int] | None = None

    def dynamic_model(self) -> Any:
        """Return the dynamic model (a `RoutedRunner`: PyTorch family or export runtime) behind the backend."""
        backend = getattr(self.model, "backend", self.model)
        return getattr(backend, "model", backend)

    def stream_inference(self, source=None, model=None, *args, routing: RoutingSpec | None = None, **kwargs):
        """Run the stock prediction loop with `routing` for every batch, then log the routing summary."""
        self.routed_images = {r: 0 for r in ROUTES}
        yield from super().stream_inference(source, model, *args, routing=routing, **kwargs)
        n = sum(self.routed_images.values())
        if self.args.verbose and n:
            spec = routing or self.dynamic_model().default_routing()
            LOGGER.info(
                f"Routing: {self.routed_images['hard']}/{n} images hard ({self.routed_images['hard'] / n:.1%}) at "
                f"{spec.describe()}{spec.cost_note()}"
            )

    def setup_model(self, model, verbose: bool = True) -> None:
        """Set up the model as Ultralytics does; a checkpoint path is loaded by dydet's safe loader first."""
        model = model or self.args.model
        if isinstance(model, (str, Path)) and str(model).lower().endswith(".pt"):
            model = load_checkpoint(model)[0]
        super().setup_model(model, verbose)

    def setup_source(self, source, *args, **kwargs) -> None:
        """Set up the source as Ultralytics does; claim the output folder atomically when results are saved."""
        super().setup_source(source, *args, **kwargs)
        if (self.args.save or self.args.save_txt) and self.save_dir != getattr(self, "_claimed_dir", None):
            self.save_dir = self._claimed_dir = claim_save_dir(self.args)

    def preprocess(self, im: torch.Tensor | list[np.ndarray]) -> torch.Tensor:
        """Letterbox images to the square `imgsz` as calibration does (`dydet.utils.preprocess`); tensors as given."""
        if isinstance(im, torch.Tensor):
            return super().preprocess(im)
        return preprocess_images(im, self.imgsz, self.device, torch.float16 if self.model.fp16 else torch.float32)

    def inference(self, im: torch.Tensor, *args, routing: RoutingSpec | None = None, **kwargs) -> RoutedPreds:
        """Route the batch with `routing` (None: the model's default) and return the predictions with the record."""
        return RoutedPreds(*self.dynamic_model().routed(im, routing))

    def postprocess(self, preds: RoutedPreds, img, orig_imgs, **kwargs):
        """Apply NMS, build `Results` and tag each with its image's route and score."""
        preds, routing = preds
        results = super().postprocess(preds, img, orig_imgs, **kwargs)
        scores = routing.score.tolist() if routing.score is not None else [None] * len(results)
        for r, route, score in zip(results, routing.routes, scores):
            r.route, r.score = route, score
            if self.routed_images is not None:
                self.routed_images[route] += 1
        return results

    def run_callbacks(self, event: str) -> None:
        """Run the callbacks of `event`; after postprocessing, keep each image's route and score on its `Results`.

        A tracker's postprocess callback replaces each `Results` by a filtered copy (`result[idx]`), which drops the
        attributes dydet added; they are put back on the new objects.
        """
        if event != "on_predict_postprocess_end":
            return super().run_callbacks(event)
        tags = [(getattr(r, "route", None), getattr(r, "score", None)) for r in self.results]
        super().run_callbacks(event)
        for r, (route, score) in zip(self.results, tags):
            r.route, r.score = route, score

    # The stock write_results plots, then calls show() and save_predicted_images() on `self.plotted_img`; the banner
    # goes in between, through those two hooks, so the rest of write_results (labels, crops, naming) stays stock.
    def write_results(self, i: int, p: Path, im: torch.Tensor, s: list[str]) -> str:
        """Write one image's results as the stock predictor does, with the route banner on saved/shown images."""
        self._banner_result = result = self.results[i]
        try:
            line = super().write_results(i, p, im, s)
        finally:
            self._banner_result = None
        route = getattr(result, "route", None)
        if route is None:
            return line
        # the stock line ends with "<detections>, <inference time>ms": the route and score go before the time
        head, sep, tail = line.rpartition(f"{result.speed['inference']:.1f}ms")
        return f"{head}{route_label(route, result.score)}, {sep}{tail}" if sep else line

    def _add_banner(self) -> None:
        """Draw the pending image's route banner on `plotted_img`, once per image."""
        r, self._banner_result = self._banner_result, None
        if r is not None and getattr(r, "route", None) is not None and self.plotted_img is not None:
            self.plotted_img = draw_route_banner(self.plotted_img, r.route, r.score, self.args.line_width)

    def show(self, p: str = "") -> None:
        """Display the plotted image with its route banner."""
        self._add_banner()
        super().show(p)

    def save_predicted_images(self, save_path: Path, frame: int | None = 0) -> None:
        """Save the plotted image (or video frame) with its route banner; an image that cannot be written is an error.

        The stock `cv2.imwrite` returns False on a full disk or a read-only folder and the run reports "Results saved"
        all the same; images are written atomically here instead, and a failed write stops the run in one line.
        """
        self._add_banner()
        if self.dataset.mode in {"stream", "video"}:
            return super().save_predicted_images(save_path, frame)
        path = Path(save_path).with_suffix(".jpg")
        ok, buffer = cv2.imencode(".jpg", self.plotted_img)
        try:
            if not ok:
                raise OSError(errno.EIO, "the image could not be encoded")
            atomic_write_bytes(path, buffer.tobytes())
        except OSError as e:
            with contextlib.suppress(OSError):
                Path(self.save_dir).rmdir()  # the folder this run claimed, when it holds nothing yet
            if isinstance(e, WriteError):
                raise
            raise write_error(path, e) from e
