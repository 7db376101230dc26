"""`DynamicYOLO`: the Python front end, in the spirit of `ultralytics.YOLO`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ultralytics.engine.model import Model
from ultralytics.utils import DEFAULT_CFG_DICT, LOGGER, RANK

from dydet.engine.args import pop_routing_args, prepare_train_args
from dydet.engine.calibration import build_calibration, save_calibrated, threshold_for_hard_ratio
from dydet.engine.tradeoff import HARD_RATIOS, format_table, routed_latency, save_tradeoff, tradeoff_table
from dydet.engine.validator import DynamicDetMetrics, DynamicValidator
from dydet.nn.modules import hard_mask
from dydet.nn.tasks import DynamicDetectionModel
from dydet.utils.checkpoint import TRUST_ARG, load_checkpoint, require_dynamic, save_checkpoint, trusting
from dydet.utils.checks import check_hard_ratio
from dydet.utils.inputs import check_data, check_run_args, check_source, is_url, require_export_extra


class DynamicYOLO(Model):
    """A DynamicDet model: build from a dydet YAML or load a dydet checkpoint, then train / val / predict / export.

    Examples:
        >>> model = DynamicYOLO("dy-yolo11n.yaml")
        >>> model.train(epochs=10)  # embedded demo dataset when `data` is not given
        >>> results = model.predict("image.jpg", hard_ratio=0.3)
        >>> results[0].route, results[0].score
    """

    def __init__(
        self, model: str | Path = "dy-yolo11n.yaml", verbose: bool = False, trust_checkpoint: bool = False
    ) -> None:
        """Create a model from a dydet YAML (new, random weights), a `.pt` dydet checkpoint or an ONNX export folder.

        Args:
            model (str | Path): A dydet model YAML or shipped name (e.g. `dy-yolo11n.yaml`), a checkpoint path, or a
                folder written by `export(format="onnx")` (prediction only, through onnxruntime).
            verbose (bool): Print the model summary when building from YAML.
            trust_checkpoint (bool): UNSAFE. Also load checkpoints (this one and `pretrained=` ones) that need
                arbitrary unpickling, e.g. an old-format dydet file. Such a file can run any code: only for files
                from a source you trust. By default dydet loads weights only and refuses them.
        """
        if is_url(model):  # also keeps Ultralytics from taking an http URL for a Triton server
            raise ValueError(f"model='{model}' is a URL: dydet does not download checkpoints; fetch the file first")
        self.exported = None
        self.trust_checkpoint = trust_checkpoint
        with trusting(trust_checkpoint):
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
        """Load a dydet checkpoint or ONNX export folder, refusing anything else with a clear message."""
        if Path(weights).is_dir():
            from dydet.engine.onnx_runtime import load_export

            self.exported = load_export(weights)  # clear one-line errors for a folder that is not a dydet export
            self.model, self.ckpt, self.task, self.ckpt_path = self.exported, None, "detect", str(weights)
            self.overrides = {"model": str(weights), "task": "detect"}
            self.model_name = str(weights)
            return
        if not str(weights).lower().endswith(".pt"):
            raise ValueError(
                f"model='{weights}' is not a dydet checkpoint (.pt), model YAML or ONNX export folder"
                + (": dydet does not download, fetch the file first and pass its path" if "://" in str(weights) else "")
            )
        self.model, self.ckpt = load_checkpoint(weights)  # weights-only (dydet.utils.checkpoint)
        require_dynamic(self.model, weights)
        self.task = "detect"
        self.overrides = self.model.args = self._reset_ckpt_args(self.model.args)
        self.ckpt_path = self.model_name = str(weights)
        self.overrides.update(model=str(weights), task="detect")

    def load(self, weights: str | Path = "dy-yolo11n.pt") -> DynamicYOLO:
        """Load weights from a dydet (or, into both routes, an Ultralytics detection) checkpoint, safely."""
        from dydet.utils.checkpoint import checkpoint_model, load_checkpoint_dict

        with trusting(self.trust_checkpoint):
            source = checkpoint_model(load_checkpoint_dict(weights)) if isinstance(weights, (str, Path)) else weights
        self.model.load(source)
        self.predictor = None
        return self

    def save(self, filename: str | Path = "saved_model.pt") -> None:
        """Save the model as a weights-only dydet checkpoint (loads without running code), atomically."""
        from datetime import datetime

        self._require_pytorch("save")
        ckpt = {
            "epoch": -1,
            "model": self.model,
            "train_args": dict(self.overrides),
            "date": datetime.now().isoformat(),
        }
        save_checkpoint(ckpt, filename)

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
            **kwargs (Any): Ultralytics training arguments plus dydet's: `stage` (all | 1 | 2 | calibrate),
                `stage2_epochs`, `stage2_lr`, `stage2_batch`, `calibrate`, `trust_checkpoint` (unsafe, see
                `__init__`). `resume=True` on any checkpoint of an interrupted run finishes the stages it was asked
                for, with its own data and settings; `stage=calibrate` calibrates a trained router alone.

        Returns:
            (DetMetrics | None): The final validation metrics.
        """
        from dydet.engine.stages import make_plan, resume_plan, run_plan

        self._require_pytorch("train")
        kwargs = dict(kwargs)
        check_run_args("train", kwargs)
        with trusting(kwargs.pop(TRUST_ARG, None) or self.trust_checkpoint):
            if kwargs.get("resume"):
                return resume_plan(self, kwargs.pop("resume"), kwargs)
            if str(kwargs.get("stage")) == "calibrate":
                return run_plan(self, make_plan(kwargs))
            return run_plan(self, make_plan(prepare_train_args(kwargs, self.overrides)), trainer)

    def calibrate(self, data: str | None = None, imgsz: int | None = None, batch: int | None = None, **kwargs: Any):
        """Run the router over the validation split and store the calibration in the model and its checkpoint.

        Writes `final.pt` beside the trained checkpoint (atomically; the trained checkpoint is left as it is) and
        makes this object use it. Prints the trade-off table over hard ratios.

        Args:
            data (str, optional): Data YAML; defaults to the one the model was trained on.
            imgsz (int, optional): Image size; defaults to the training size.
            batch (int, optional): Validation batch size.
            **kwargs (Any): Further validation arguments (device, project, name, ...).

        Returns:
            (dict): The calibration record (also in `self.model.calibration`).
        """
        args = {k: v for k, v in {"data": data, "imgsz": imgsz, "batch": batch}.items() if v is not None}
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        metrics, validator = self._validate(**{"plots": False, **args, **kwargs})
        calibration = build_calibration(
            self.model, metrics.scores, validator.args.imgsz, validator.args.data, validator.device
        )
        self.model.calibration = calibration
        self.model.threshold = threshold_for_hard_ratio(calibration, 0.5)
        LOGGER.info(
            f"Calibrated on {calibration['n_images']} images at {calibration['imgsz']} px: default threshold "
            f"{self.model.threshold:.4f} (hard ratio 0.5); GFLOPs easy {calibration['gflops']['easy']:.2f}, "
            f"hard {calibration['gflops']['hard']:.2f}"
        )
        self._report_tradeoff(metrics, validator)
        if self.ckpt_path and Path(self.ckpt_path).is_file():
            final = save_calibrated(self.ckpt_path, calibration, self.model.threshold)
            self.ckpt_path = self.overrides["model"] = str(final)
            LOGGER.info(f"Final calibrated checkpoint: {final}")
        return calibration

    def _validate(self, validator=None, **kwargs: Any) -> tuple[DynamicDetMetrics, DynamicValidator]:
        """Run the per-route validator and return its metrics and itself."""
        custom = {"rect": True}
        if kwargs.get("data") is None:
            kwargs["data"] = self.overrides.get("data")  # the training data; never a default dataset
        check_run_args("val", kwargs)
        check_data(kwargs["data"], "val")  # missing YAML, URL, `download:`, labels beyond nc: before any folder
        if kwargs.get("project"):
            kwargs["project"] = str(Path(kwargs["project"]).resolve())
        args = {**self.overrides, **custom, **kwargs, "mode": "val"}
        validator = (validator or self._smart_load("validator"))(args=args, _callbacks=self.callbacks)
        validator(model=self.model)
        self.metrics = validator.metrics
        return validator.metrics, validator

    def val(self, validator=None, **kwargs: Any) -> DynamicDetMetrics:
        """Validate: both routes' metrics, plus the routed model at `threshold`/`hard_ratio`, or the trade-off table.

        Args:
            validator (type, optional): A custom validator class.
            **kwargs (Any): Ultralytics validation arguments plus `threshold`, `hard_ratio` or `route`.

        Returns:
            (DynamicDetMetrics): Per-route metrics; `.selected` holds the routed (or forced-route) metrics when a
                threshold, hard ratio or route was given, `.tradeoff` the table rows when the model is calibrated.
        """
        self._require_pytorch("val")
        hard_ratios = tuple(check_hard_ratio(p) for p in (kwargs.pop("hard_ratios", None) or HARD_RATIOS))
        threshold, route = pop_routing_args(self.model, kwargs)
        metrics, v = self._validate(validator, **kwargs)
        metrics.selected = metrics.tradeoff = None
        if route:
            metrics.selected = metrics.routes[route]
        elif threshold is not None:
            hard = hard_mask(np.asarray(metrics.scores), threshold)
            metrics.selected = metrics.routed(hard)
            p, mr = float(hard.mean()), metrics.selected.mean_results()
            LOGGER.info(
                f"Routed at threshold {threshold:.4f}: {p:.1%} of images hard; mAP50 {mr[2]:.4f}, mAP50-95 {mr[3]:.4f}"
            )
        elif self.model.calibration:
            self._report_tradeoff(metrics, v, hard_ratios)
        else:
            LOGGER.info("This model is not calibrated (no stage 2 yet): per-route metrics only, no trade-off table.")
        return metrics

    def _report_tradeoff(
        self, metrics: DynamicDetMetrics, validator: DynamicValidator, hard_ratios: tuple[float, ...] = HARD_RATIOS
    ) -> None:
        """Print and save the trade-off table of a calibrated model for the validation run just done."""
        model = validator.dynamic_model().eval()
        images = validator.sample_images(16)
        latency = routed_latency(model, images)
        metrics.tradeoff = tradeoff_table(metrics, self.model.calibration, hard_ratios, latency=latency)
        LOGGER.info(
            "\nTrade-off over hard ratios (router vs random vs oracle routing):\n" + format_table(metrics.tradeoff)
        )
        save_tradeoff(metrics.tradeoff, Path(validator.save_dir))

    def predict(self, source=None, stream: bool = False, predictor=None, **kwargs: Any):
        """Predict with per-image routing; each `Results` carries `route` and `score`.

        Args:
            source (Any): Image, folder, glob, video, array or tensor, as for `ultralytics.YOLO.predict`.
            stream (bool): Return a generator.
            predictor (type, optional): A custom predictor class.
            **kwargs (Any): Ultralytics prediction arguments plus `threshold`, `hard_ratio` or `route`.

        Returns:
            (list[Results] | Generator): Results with `.route` and `.score`.
        """
        source = check_source(source)  # missing/empty/unreadable files, URLs offline: before any run folder
        check_run_args("predict", kwargs)
        threshold, route = pop_routing_args(self.model, kwargs)
        if self.exported is not None:
            from dydet.engine.onnx_runtime import predict_exported

            return predict_exported(self.exported, source, threshold=threshold, route=route, stream=stream, **kwargs)
        results = super().predict(source=source, stream=True, predictor=predictor, **kwargs)
        self.predictor.threshold, self.predictor.route = threshold, route
        return results if stream else list(results)

    def export(self, format: str = "onnx", **kwargs: Any) -> Path:
        """Export to ONNX as split graphs (router + B1 features, easy head, hard head) that route in the runtime.

        Args:
            format (str): Only 'onnx' (split graphs); other formats cannot route per image.
            **kwargs (Any): `imgsz` (default: the calibration's, else 640), `opset`, `half`, `simplify`, `project` /
                `name` for the output folder (default: `<checkpoint stem>_onnx` beside the checkpoint), and
                `threshold` or `hard_ratio` to set the export's default threshold.

        Returns:
            (Path): The export folder (`router.onnx`, `easy.onnx`, `hard.onnx`, `metadata.json`).
        """
        from dydet.engine.exporter import export_onnx

        self._require_pytorch("export")
        if str(format).lower() != "onnx":
            raise ValueError(f"format={format!r} is not supported: dydet exports format=onnx (split graphs that route)")
        require_export_extra()
        threshold, _ = pop_routing_args(self.model, kwargs)
        if threshold is not None:
            self.model.threshold = threshold  # becomes the export's default threshold
        calibration = self.model.calibration or {}
        imgsz = kwargs.get("imgsz") or calibration.get("imgsz") or 640
        if kwargs.get("project") or kwargs.get("name"):
            out = Path(kwargs.get("project") or Path.cwd()).resolve() / (kwargs.get("name") or "export")
        elif self.ckpt_path:
            out = Path(self.ckpt_path).with_name(f"{Path(self.ckpt_path).stem}_onnx")
        else:
            out = Path.cwd() / "export_onnx"
        path = export_onnx(
            self.model,
            out,
            imgsz,
            opset=kwargs.get("opset"),
            half=bool(kwargs.get("half")),
            simplify=bool(kwargs.get("simplify")),
        )
        LOGGER.info(f"Exported split ONNX graphs to {path}; predict with: dydet predict model={path} source=...")
        return path

    def benchmark(self, **kwargs: Any):
        """Measure the routes and hard ratios against the family's static models, side by side (docs/BENCHMARKS.md).

        Args:
            **kwargs (Any): `baselines`, `hard_ratios`, `imgsz` (320), `batch` (8), `device` (cpu), `half` /
                `quantize=16`, `data` or `source` (benchmark images), `project` / `name` / `exist_ok`, `verbose`.

        Returns:
            (BenchmarkResult): Rows and ratios; files (speed.csv/.md/.png) in `result.files`.
        """
        from dydet.engine.benchmark import run_benchmark

        self._require_pytorch("benchmark")
        check_run_args("benchmark", kwargs)
        if str(kwargs.get("data") or "").endswith((".yaml", ".yml")) or kwargs.get("data") == "":
            check_data(kwargs["data"], "benchmark")
        return run_benchmark(self.model, **kwargs)

    def _require_pytorch(self, mode: str) -> None:
        """Refuse PyTorch-only modes on an ONNX export folder."""
        if self.exported is not None:
            raise ValueError(
                f"'{mode}' needs the PyTorch checkpoint: '{self.ckpt_path}' is an ONNX export (predict only)"
            )

    def route_summary(self, imgsz: int = 640) -> dict[str, dict[str, float]]:
        """Return parameters and GFLOPs of the easy route, the hard route and the router."""
        return self.model.route_summary(imgsz)


__all__ = ["DynamicYOLO"]
