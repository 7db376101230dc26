"""Static YOLOv7-family models (`yolov7-tiny.yaml`, `yolov7.yaml`, ...): train, validate and predict them with dydet.

Ultralytics cannot build these YAMLs (their SPPCSPC / ReOrg layers and channel tracking live in `dydet.nn.parse`):
`ultralytics.YOLO("yolov7-tiny.yaml")` builds a different network (8.14M parameters instead of 6.85M, widths taken
from the wrong arguments). `StaticYOLO` is `ultralytics.YOLO` for them: the same trainer, validator
and predictor, with dydet's model class, weights-only atomic checkpoints and CPU thread defaults. A trained static
checkpoint is what `pretrained=` loads into both routes of the Dy model of the same family, and the static baseline
`dydet benchmark` and `benchmarks/accuracy_vs_cost.py` compare it against.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ultralytics.engine.model import Model
from ultralytics.models.yolo.detect import DetectionPredictor, DetectionValidator
from ultralytics.utils import DEFAULT_CFG_DICT, LOGGER, RANK

from dydet.engine.stages import fit
from dydet.engine.trainer import DydetTrainer
from dydet.nn.checkpoint import load_checkpoint
from dydet.nn.tasks import StaticDetectionModel
from dydet.utils.errors import ArgumentError, CheckpointError
from dydet.utils.offline import setup_offline


class StaticTrainer(DydetTrainer):
    """Ultralytics' detection training of a `StaticDetectionModel`, with dydet's checkpoints and CPU defaults.

    One model, one loss and Ultralytics' own validator and plots; from `DydetTrainer`, weights-only atomic
    checkpoints, resume through dydet's loader and the CPU thread / worker default.
    """

    def get_model(self, cfg=None, weights=None, verbose: bool = True) -> StaticDetectionModel:
        """Build the static model for this dataset and load `weights` (a static model of the same YAML) into it."""
        model = StaticDetectionModel(
            cfg or self.args.model, nc=self.data["nc"], ch=self.data["channels"], verbose=verbose and RANK == -1
        )
        if weights:
            model.load(weights)
        return model

    def final_eval_model(self) -> StaticDetectionModel:
        """Return `best.pt` loaded by dydet's weights-only loader (Ultralytics' validator would unpickle the file)."""
        return load_checkpoint(self.best)[0]


class StaticYOLO(Model):
    """`ultralytics.YOLO` for the static models only dydet builds (the YOLOv7 family).

    Examples:
        >>> model = StaticYOLO("yolov7-tiny.yaml")
        >>> model.train(data="coco8.yaml", epochs=10)
        >>> DynamicYOLO("dy-yolov7-tiny.yaml").train(pretrained=model.ckpt_path)  # both routes start from it
    """

    def __init__(self, model: str | Path = "yolov7-tiny.yaml", verbose: bool = False) -> None:
        """Build from a static dydet YAML (random weights) or load a checkpoint saved by dydet (weights-only)."""
        setup_offline()
        super().__init__(model=model, task="detect", verbose=verbose)

    def _new(self, cfg: str, task: str | None = None, verbose: bool = False) -> None:
        """Build a new static model from a YAML."""
        self.cfg, self.task, self.model_name = cfg, "detect", cfg
        self.model = StaticDetectionModel(cfg, verbose=verbose and RANK == -1)
        self.overrides.update(model=cfg, task="detect")
        self.model.args = {**DEFAULT_CFG_DICT, **self.overrides}
        self.model.task = "detect"

    def _load(self, weights: str, task: str | None = None) -> None:
        """Load a static checkpoint with dydet's weights-only loader."""
        if not str(weights).lower().endswith(".pt"):
            raise ArgumentError(f"model='{weights}' is neither a static model YAML nor a checkpoint (.pt)")
        self.model, self.ckpt = load_checkpoint(weights)
        if not isinstance(self.model, StaticDetectionModel):
            raise CheckpointError(
                f"'{weights}' holds a {type(self.model).__name__}, not a static dydet model: load it with "
                "DynamicYOLO (Dy models) or ultralytics.YOLO (Ultralytics models)"
            )
        self.task = "detect"
        self.overrides = self.model.args = self._reset_ckpt_args(self.model.args)
        self.overrides.update(model=str(weights), task="detect")
        self.ckpt_path = self.model_name = str(weights)

    @property
    def task_map(self) -> dict[str, dict[str, Any]]:
        """Map the detect task to dydet's static model and trainer and Ultralytics' validator and predictor."""
        return {
            "detect": {
                "model": StaticDetectionModel,
                "trainer": StaticTrainer,
                "validator": DetectionValidator,
                "predictor": DetectionPredictor,
            }
        }

    def train(self, trainer=None, **kwargs: Any):
        """Train as `ultralytics.YOLO.train` does, through dydet's `fit` (atomic run folder, weights-only reload).

        The run folder is claimed atomically, checkpoints are weights-only, and the best one is reloaded with dydet's
        weights-only loader.

        Args:
            trainer (type, optional): A custom trainer class (default `StaticTrainer`).
            **kwargs (Any): Ultralytics training arguments, plus `threads` (torch threads for CPU training).

        Returns:
            (DetMetrics | None): The final validation metrics.
        """
        self._check_is_pytorch_model()
        if kwargs.get("data") is None and not kwargs.get("resume"):
            raise ArgumentError("StaticYOLO.train needs data=: a dataset YAML")
        if kwargs.get("project"):
            kwargs["project"] = str(Path(kwargs["project"]).expanduser().resolve())
        metrics = fit(self, trainer or StaticTrainer, kwargs)
        if RANK in {-1, 0}:
            LOGGER.info(f"StaticYOLO: trained weights in {self.ckpt_path}")
        return metrics
