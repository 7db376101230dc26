"""`DynamicYOLO`: the Python front end, in the spirit of `ultralytics.YOLO`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ultralytics.engine.model import Model
from ultralytics.utils import DEFAULT_CFG_DICT, RANK

from dydet.engine.args import DYDET_ONLY_KEYS, prepare_train_args
from dydet.nn.tasks import DynamicDetectionModel
from dydet.utils.checkpoint import load_checkpoint_dict, require_dynamic


class DynamicYOLO(Model):
    """A DynamicDet model: build from a dydet YAML or load a dydet checkpoint, then train / val / predict / export.

    Examples:
        >>> model = DynamicYOLO("dy-yolo11n.yaml")
        >>> model.train(epochs=10)  # embedded demo dataset when `data` is not given
        >>> results = model.predict("image.jpg", hard_ratio=0.3)
        >>> results[0].route, results[0].score
    """

    def __init__(self, model: str | Path = "dy-yolo11n.yaml", verbose: bool = False) -> None:
        """Create a model from a dydet YAML (new, random weights) or a `.pt` dydet checkpoint.

        Args:
            model (str | Path): A dydet model YAML or shipped name (e.g. `dy-yolo11n.yaml`) or a checkpoint path.
            verbose (bool): Print the model summary when building from YAML.
        """
        super().__init__(model=model, task="detect", verbose=verbose)

    def _new(self, cfg: str, task: str | None = None, verbose: bool = False) -> None:
        """Build a new dynamic model from a dydet YAML."""
        self.cfg = cfg
        self.task = "detect"
        self.model = DynamicDetectionModel(cfg, verbose=verbose and RANK == -1)
        self.overrides["model"] = self.cfg
        self.overrides["task"] = self.task
        self.model.args = {**DEFAULT_CFG_DICT, **self.overrides}
        self.model.task = self.task
        self.model_name = cfg

    def _load(self, weights: str, task: str | None = None) -> None:
        """Load a dydet checkpoint, refusing anything else with a clear message."""
        ckpt = load_checkpoint_dict(weights)
        require_dynamic(ckpt.get("ema") or ckpt.get("model"), weights)
        super()._load(str(weights), task)

    @property
    def task_map(self) -> dict[str, dict[str, Any]]:
        """Map the detect task to dydet's model, trainer, validator and predictor classes."""
        from dydet.engine.predictor import DynamicPredictor
        from dydet.engine.trainer import DynamicTrainer
        from dydet.engine.validator import DynamicValidator

        return {
            "detect": {
                "model": DynamicDetectionModel,
                "trainer": DynamicTrainer,
                "validator": DynamicValidator,
                "predictor": DynamicPredictor,
            }
        }

    def train(self, trainer=None, **kwargs: Any):
        """Train a dynamic model: stage 1 (both routes), then stage 2 (router) and calibration, as `stage` says.

        Without `data`, trains on the embedded demo dataset (generated offline on first use) with defaults that
        finish on a laptop CPU in minutes. A relative `project` is resolved against the current directory.

        Args:
            trainer (type, optional): A custom stage-1 trainer class.
            **kwargs (Any): Ultralytics training arguments plus dydet's (`stage`, `stage2_*`, `calibrate`).

        Returns:
            (DetMetrics | None): The final validation metrics.
        """
        kwargs = prepare_train_args(kwargs, self.overrides)
        stage = str(kwargs.pop("stage", "all"))
        for key in DYDET_ONLY_KEYS:
            kwargs.pop(key, None)
        if stage not in {"all", "1", "2"}:
            raise ValueError(f"stage={stage!r} is invalid: use all, 1 or 2")
        if stage == "2":
            raise NotImplementedError("stage 2 (router training) is not available yet")
        return super().train(trainer=trainer, **kwargs)

    def route_summary(self, imgsz: int = 640) -> dict[str, dict[str, float]]:
        """Return parameters and GFLOPs of the easy route, the hard route and the router."""
        return self.model.route_summary(imgsz)


__all__ = ["DynamicYOLO"]
