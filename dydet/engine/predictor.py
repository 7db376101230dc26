"""Prediction with per-image routing: every `Results` carries the route its image took and its router score."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from ultralytics.engine.results import Results
from ultralytics.models.yolo.detect import DetectionPredictor

# BGR; the same hues as the route curves in dydet.utils.plotting (tab:blue easy, tab:red hard)
ROUTE_COLORS = {"easy": (180, 119, 31), "hard": (40, 39, 214)}


def route_label(route: str, score: float | None) -> str:
    """Return the banner text for an image: `'hard 0.31'`, or `'hard (forced)'` when the route was forced."""
    return f"{route} {score:.2f}" if score is not None else f"{route} (forced)"


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


class DynamicPredictor(DetectionPredictor):
    """Detection predictor for dynamic models.

    Each batch is routed per image by the model (`threshold`, or a forced `route`); the resulting `Results` get two
    extra attributes, `route` ('easy' | 'hard') and `score` (router easiness score, None when a route was forced).
    Saved and shown images carry a top-left banner with the route and score (see `draw_route_banner`); text labels
    (`save_txt`) are the stock ones.

    Attributes:
        threshold (float | None): Router score cut for the next calls (None: the model's own default).
        route (str | None): Force 'easy' or 'hard' for every image (None: let the router decide).
    """

    threshold: float | None = None
    route: str | None = None
    _banner_result: Results | None = None

    def dynamic_model(self) -> torch.nn.Module:
        """Return the `DynamicDetectionModel` behind the AutoBackend."""
        backend = getattr(self.model, "backend", self.model)
        return getattr(backend, "model", backend)

    def setup_model(self, model, verbose: bool = True) -> None:
        """Set up the model as Ultralytics does; a checkpoint path is loaded by dydet's safe loader first."""
        model = model or self.args.model
        if isinstance(model, (str, Path)) and str(model).lower().endswith(".pt"):
            from dydet.utils.checkpoint import load_checkpoint

            model = load_checkpoint(model)[0]
        super().setup_model(model, verbose)

    def inference(self, im: torch.Tensor, *args, **kwargs) -> Any:
        """Run the routed forward pass with this predictor's threshold/route."""
        return super().inference(im, *args, threshold=self.threshold, route=self.route, **kwargs)

    def postprocess(self, preds, img, orig_imgs, **kwargs):
        """Apply NMS, build `Results` and tag each with its image's route and score."""
        results = super().postprocess(preds, img, orig_imgs, **kwargs)
        routing = getattr(self.dynamic_model(), "routing", None)
        routes = routing.routes if routing is not None else [None] * len(results)
        scores = routing.score.tolist() if routing is not None and routing.score is not None else [None] * len(results)
        for r, route, score in zip(results, routes, scores):
            r.route, r.score = route, score
        return results

    # The stock write_results plots, then calls show() and save_predicted_images() on `self.plotted_img`; the banner
    # goes in between, through those two hooks, so the rest of write_results (labels, crops, naming) stays stock.
    def write_results(self, i: int, p: Path, im: torch.Tensor, s: list[str]) -> str:
        """Write one image's results as the stock predictor does, with the route banner on saved/shown images."""
        self._banner_result = self.results[i]
        try:
            return super().write_results(i, p, im, s)
        finally:
            self._banner_result = None

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
        """Save the plotted image (or video frame) with its route banner."""
        self._add_banner()
        super().save_predicted_images(save_path, frame)
