"""Stage-1 training (DESIGN.md §1.2): both routes on every image, loss = easy-route loss + hard-route loss."""

from __future__ import annotations

from copy import copy

from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils import RANK

from dydet.engine.checkpointing import SafeCheckpoints
from dydet.engine.validator import DynamicValidator
from dydet.nn.tasks import DynamicDetectionModel


class DynamicTrainer(SafeCheckpoints, DetectionTrainer):
    """Stage-1 trainer for a `DynamicDetectionModel`: B1, B2, H1 and H2 jointly, equal-weight sum of both losses.

    Losses are logged per route (`e_box e_cls e_dfl h_box h_cls h_dfl`), validation reports each route's precision,
    recall, mAP50 and mAP50-95, and the best checkpoint maximises the mean of both routes' fitness. A single-model
    Ultralytics checkpoint passed as `pretrained=` initialises both routes (see `DynamicDetectionModel.load_single`).
    Checkpoints are weights-only and written atomically (`SafeCheckpoints`).
    """

    def get_model(self, cfg=None, weights=None, verbose: bool = True) -> DynamicDetectionModel:
        """Build the dynamic model for this dataset and load `weights` (dydet or single-model) into it."""
        model = DynamicDetectionModel(
            cfg or self.args.model, nc=self.data["nc"], ch=self.data["channels"], verbose=verbose and RANK == -1
        )
        model = self.set_model_names_for_load(model)
        if weights:
            model.load(weights)
        model.stage = 1  # any change to the detectors invalidates a trained router
        return model

    def get_validator(self) -> DynamicValidator:
        """Return the per-route validator."""
        return DynamicValidator(
            self.test_loader, save_dir=self.save_dir, args=copy(self.args), _callbacks=self.callbacks
        )

    def plot_metrics(self) -> None:
        """Plot both routes' losses and metrics per epoch into `results.png`."""
        from dydet.utils.plotting import plot_route_results

        plot_route_results(self.csv, on_plot=self.on_plot)
