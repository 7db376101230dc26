"""What a dynamic detector family is to the rest of dydet: a shared trunk + router, and one tail per route.

The router trainer, calibration, per-route validator, trade-off table, predictor, benchmark and exporter drive a
model only through this interface, so a new family (e.g. a two-stage detector) plugs in by implementing it. What is
truly family-specific (the per-image detection loss, graph splitting for export) stays behind the family's methods.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import torch

from dydet.routing import RoutedRunner


class DetectorFamily(RoutedRunner):
    """A trainable dynamic detector family (a PyTorch model), as the training, validation and reporting code see it.

    Attributes:
        calibration (dict | None): Router scores on the validation split and per-route costs, set by calibration.
        stage (int): Training stage reached: 0 untrained, 1 cascade (both routes), 2 router trained.
    """

    calibration: dict | None = None
    stage: int = 0
    # Why this family cannot be exported, in one line; None: it can (split graphs, `dydet.engine.exporter`).
    export_refusal: str | None = None
    # Whether `load` and `check_pretrained` read the family's own pretrained files (R-CNN: torchvision state dicts)
    # rather than dydet / Ultralytics detection checkpoints, which the training code then loads itself.
    own_pretrained: bool = False

    def train_defaults(self) -> dict[str, Any]:
        """Return training arguments this family defaults to (a value the user gives wins); none by default."""
        return {}

    def check_pretrained(self, path: str | Path) -> None:
        """Refuse early, with a one-line error, a `pretrained=` file of the family's own kind that it cannot use.

        Called only when `own_pretrained` is True; the default accepts any file.
        """

    @abstractmethod
    def forward_both(self, x: torch.Tensor) -> dict[str, Any]:
        """Run both routes on every image: `{"easy": ..., "hard": ..., "score": (B,)}` (training, validation)."""

    @abstractmethod
    def route_summary(self, imgsz: int | list[int] = 640) -> dict[str, dict[str, float]]:
        """Return `{"easy" | "hard" | "router": {"params", "gflops"}}` per image at `imgsz`."""

    @abstractmethod
    def init_criterion(self):
        """Return the loss of the stage being trained (both routes' detection losses, or the router loss)."""

    def router_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Return the (B,) easiness scores of a batch, running the trunk and the router only."""
        return self.run_trunk(x)[1]


__all__ = ["DetectorFamily", "RoutedRunner"]
