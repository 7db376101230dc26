"""Prediction with per-image routing: every `Results` carries the route its image took and its router score."""

from __future__ import annotations

from typing import Any

import torch
from ultralytics.models.yolo.detect import DetectionPredictor


class DynamicPredictor(DetectionPredictor):
    """Detection predictor for dynamic models.

    Each batch is routed per image by the model (`threshold`, or a forced `route`); the resulting `Results` get two
    extra attributes, `route` ('easy' | 'hard') and `score` (router easiness score, None when a route was forced).

    Attributes:
        threshold (float | None): Router score cut for the next calls (None: the model's own default).
        route (str | None): Force 'easy' or 'hard' for every image (None: let the router decide).
    """

    threshold: float | None = None
    route: str | None = None

    def dynamic_model(self) -> torch.nn.Module:
        """Return the `DynamicDetectionModel` behind the AutoBackend."""
        backend = getattr(self.model, "backend", self.model)
        return getattr(backend, "model", backend)

    def inference(self, im: torch.Tensor, *args, **kwargs) -> Any:
        """Run the routed forward pass with this predictor's threshold/route."""
        return super().inference(im, *args, threshold=self.threshold, route=self.route, **kwargs)

    def postprocess(self, preds, img, orig_imgs, **kwargs):
        """Apply NMS, build `Results` and tag each with its image's route and score."""
        results = super().postprocess(preds, img, orig_imgs, **kwargs)
        routing = self.dynamic_model().routing
        scores = routing.score.tolist() if routing.score is not None else [None] * len(results)
        for r, route, score in zip(results, routing.routes, scores):
            r.route, r.score = route, score
        return results
