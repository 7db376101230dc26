"""`DynamicModel`: the family-neutral Python front end of a dynamic detector, in the spirit of `ultralytics.Model`.

It holds what every family shares: the routing arguments, the training plan (stages 1, 2 and calibration),
calibration, validation with the trade-off table, prediction (PyTorch or an export folder), export and benchmark.
A family's front end (`dydet.models.yolo.DynamicYOLO`, `dydet.models.rcnn.DynamicRCNN`) only names its task classes
(`task_map`), as Ultralytics' RT-DETR front end does.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ultralytics.engine.model import Model
from ultralytics.utils import ASSETS, DEFAULT_CFG_DICT, LOGGER, RANK

from dydet.cfg import check_args
from dydet.data.shortcuts import resolve_data
from dydet.engine.args import (
    DYDET_ONLY_KEYS,
    ROUTING_KEYS,
    drop_dydet_args,
    pop_routing,
    prepare_train_args,
    prepare_train_run,
    uses_demo_data,
)
from dydet.engine.benchmarks import run_benchmark
from dydet.engine.calibration import build_calibration, center_router, save_calibrated
from dydet.engine.distributed import join_process_group
from dydet.engine.exported import predict_exported
from dydet.engine.quantize import INT8, check_int8_args, export_openvino_int8, export_precision
from dydet.engine.stages import make_plan, resume_plan, run_plan
from dydet.engine.tuner import DynamicTuner
from dydet.engine.validator import RoutedValidator
from dydet.nn.backends.format import FORMAT_LABELS
from dydet.nn.checkpoint import (
    load_checkpoint,
    require_dynamic,
    save_checkpoint,
)
from dydet.nn.transfer import read_pretrained
from dydet.routing import DEFAULT_HARD_RATIO, RoutingSpec, threshold_for_hard_ratio
from dydet.utils.checkpoint import TRUST_ARG, as_write_error, trusting
from dydet.utils.errors import ArgumentError
from dydet.utils.files import run_path
from dydet.utils.inputs import check_data, check_imgsz, check_run_args, check_source, is_url, require_export_extra
from dydet.utils.metrics import DynamicDetMetrics, report_payoff
from dydet.utils.offline import setup_offline
from dydet.utils.tradeoff import format_table, routed_latency, save_tradeoff, tradeoff_table


class DynamicModel(Model):
    """A DynamicDet model of any family: build from a dydet YAML or load a dydet checkpoint, then train / val / ....

    Subclasses name their family's classes in `task_map` (`model`, `trainer`, `router_trainer`, `validator`,
    `predictor`); everything else is here.
    """

    def __init__(
        self, model: str | Path = "dy-yolo11n.yaml", verbose: bool = False, trust_checkpoint: bool = False
    ) -> None:
        """Create a model from a dydet YAML (new, random weights), a `.pt` dydet checkpoint or an ONNX export folder.

        Args:
            model (str | Path): A dydet model YAML or shipped name (e.g. `dy-yolo11n.yaml`), a checkpoint path, or a
                folder written by `export(format="onnx" | "openvino")` (prediction only, through onnxruntime or
                OpenVINO).
            verbose (bool): Print the model summary when building from YAML.
            trust_checkpoint (bool): UNSAFE. Also load checkpoints (this one and `pretrained=` ones) that need
                arbitrary unpickling, e.g. an old-format dydet file. Such a file can run any code: only for files
                from a source you trust. By default dydet loads weights only and refuses them.
        """
        if is_url(model):  # also keeps Ultralytics from taking an http URL for a Triton server
            raise ArgumentError(f"model='{model}' is a URL: dydet does not download checkpoints; fetch the file first")
        setup_offline()
        self.exported = None
        self.trust_checkpoint = trust_checkpoint
        with trusting(trust_checkpoint):
            super().__init__(model=model, task="detect", verbose=verbose)

    def _new(self, cfg: str, task: str | None = None, verbose: bool = False) -> None:
        """Build a new dynamic model of this family from a dydet YAML."""
        self.cfg = cfg
        self.task = "detect"
        self.model = self.task_map["detect"]["model"](cfg, verbose=verbose and RANK == -1)
        self.overrides["model"] = self.cfg
        self.overrides["task"] = self.task
        self.model.args = {**DEFAULT_CFG_DICT, **self.overrides}
        self.model.task = self.task
        self.model_name = cfg

    def _load(self, weights: str, task: str | None = None) -> None:
        """Load a dydet checkpoint or export folder (ONNX, OpenVINO), refusing anything else with a clear message."""
        if Path(weights).is_dir():
            from dydet.nn.backends.runtime import load_export

            self.exported = load_export(weights)  # clear one-line errors for a folder that is not a dydet export
            self.model, self.ckpt, self.task, self.ckpt_path = self.exported, None, "detect", str(weights)
            self.overrides = {"model": str(weights), "task": "detect"}
            self.model_name = str(weights)
            return
        if not str(weights).lower().endswith(".pt"):
            raise ArgumentError(
                f"model='{weights}' is not a dydet checkpoint (.pt), model YAML or ONNX export folder"
                + (": dydet does not download, fetch the file first and pass its path" if "://" in str(weights) else "")
            )
        self.model, self.ckpt = load_checkpoint(weights)  # weights-only (dydet.utils.checkpoint)
        require_dynamic(self.model, weights)
        self.task = "detect"
        self.overrides = self.model.args = self._reset_ckpt_args(self.model.args)
        self.ckpt_path = self.model_name = str(weights)
        self.overrides.update(model=str(weights), task="detect")

    def load(self, weights: str | Path | tuple = "dy-yolo11n.pt") -> DynamicModel:
        """Load weights from a dydet checkpoint, or start the routes from Ultralytics detection checkpoints, safely.

        Args:
            weights (str | Path | tuple): A dydet checkpoint; a static detection checkpoint (both routes, e.g.
                yolo11n.pt for dy-yolo11n); or two, the easy route's and the hard route's (e.g. ("yolo11n.pt",
                "yolo11s.pt") for dy-yolo11n-s). Paths or loaded models.
        """
        own_loader = self.model.own_pretrained  # R-CNN: torchvision weights too
        with trusting(self.trust_checkpoint):
            if isinstance(weights, (tuple, list)) and not own_loader:
                weights = tuple(read_pretrained(w) if isinstance(w, (str, Path)) else w for w in weights)
            elif isinstance(weights, (str, Path)) and not own_loader:
                weights = read_pretrained(weights)
            source = weights
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
        """Map the detect task to the family's model, trainer, router trainer, validator and predictor classes."""
        raise NotImplementedError(f"{type(self).__name__} names no task classes: use DynamicYOLO or DynamicRCNN")

    def train(self, trainer=None, **kwargs: Any):
        """Train a dynamic model: stage 1 (both routes), then stage 2 (router) and calibration, as `stage` says.

        Without `data`, trains on the embedded demo dataset (generated offline on first use) with defaults that
        finish on a laptop CPU in minutes, then saves routed predictions of a few validation images and prints a
        summary (`dydet.engine.demo`). A relative `project` is resolved against the current directory.

        Args:
            trainer (type, optional): A custom stage-1 trainer class.
            **kwargs (Any): Ultralytics training arguments plus dydet's: `stage` (all | 1 | 2 | calibrate),
                `stage2_epochs`, `stage2_lr`, `stage2_batch`, `calibrate`, `threads` (torch threads for CPU
                training; default: cores minus dataloader workers), `trust_checkpoint` (unsafe, see `__init__`).
                `resume=True` on any checkpoint of an interrupted run finishes the stages it was asked for,
                with its own data and settings; `stage=calibrate` calibrates a trained router alone.

        Returns:
            (DetMetrics | None): The final validation metrics.
        """
        self._require_pytorch("train")
        kwargs = dict(kwargs)
        check_run_args("train", kwargs)
        join_process_group(kwargs.get("device"))  # one of several processes started by torchrun: train together
        with trusting(kwargs.pop(TRUST_ARG, None) or self.trust_checkpoint):
            checked = check_args("train", kwargs)  # dydet/cfg/default.yaml: the one check, and dydet's defaults
            if kwargs.get("resume"):  # the run's own settings, with only the arguments given (checked)
                return resume_plan(self, kwargs.pop("resume"), {k: checked[k] for k in kwargs})
            kwargs = checked
            if str(kwargs.get("stage")) == "calibrate":
                return run_plan(self, make_plan(kwargs))
            demo = uses_demo_data(kwargs, self.overrides)
            for key, value in (self.model.train_defaults() if not self.ckpt else {}).items():
                kwargs.setdefault(key, value)  # the family's own defaults (R-CNN: SGD, no mosaic), before the demo's
            check = self.model.check_pretrained if self.model.own_pretrained else None
            model_yaml = None if self.ckpt else self.model.yaml.get("yaml_file")
            kwargs, weights = prepare_train_run(kwargs, self.overrides, check, model_yaml)
            return run_plan(self, make_plan(kwargs, demo=demo), trainer, pretrained=weights)

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
        # no results table: the trade-off over hard ratios below reports this validation ('dydet val' has the tables)
        metrics, validator = self._validate(table=False, **{"plots": False, "verbose": False, **args, **kwargs})
        metrics.scores = center_router(self.model, validator.dataloader.dataset.im_files, validator.args.imgsz)
        calibration = build_calibration(
            self.model, metrics.scores, validator.args.imgsz, validator.args.data, validator.device
        )
        self.model.calibration = calibration
        self.model.threshold = threshold_for_hard_ratio(calibration, DEFAULT_HARD_RATIO)
        LOGGER.info(
            f"Calibrated on {calibration['n_images']} images at {calibration['imgsz']} px: default threshold "
            f"{self.model.threshold:.4f} (hard ratio {DEFAULT_HARD_RATIO}); "
            f"GFLOPs easy {calibration['gflops']['easy']:.2f}, hard {calibration['gflops']['hard']:.2f}"
        )
        self._report_tradeoff(metrics, validator)
        report_payoff(metrics, "on the calibration split")
        if self.ckpt_path and Path(self.ckpt_path).is_file():
            final = save_calibrated(self.ckpt_path, calibration, self.model.threshold, self.model.router)
            self.ckpt_path = self.overrides["model"] = str(final)
            LOGGER.info(f"Final calibrated checkpoint: {final}")
        return calibration

    def _validate(
        self, validator=None, routing: RoutingSpec | None = None, table: bool = True, **kwargs: Any
    ) -> tuple[DynamicDetMetrics, RoutedValidator]:
        """Run `Model.val` with the per-route validator (`(B)` at `routing`, None: the model's own); return it too.

        Only what differs from `Model.val` is here: dydet's data shortcuts and the routing handed to the validator's
        constructor; the validator made is returned with its metrics. `table=False`: the validator prints no results
        table (the caller reports the validation).
        """
        kwargs["data"] = resolve_data(kwargs.get("data"))
        if kwargs.get("data") is None:
            kwargs["data"] = self.overrides.get("data")  # the training data; never a default dataset
        check_run_args("val", kwargs)
        check_data(kwargs["data"], "val")  # missing YAML, URL, `download:`, labels beyond nc: before any folder
        validator_class = validator or self._smart_load("validator")
        made = []

        def make(**args: Any) -> RoutedValidator:
            made.append(validator_class(**args, routing=routing))
            made[-1].print_table = table
            return made[-1]

        try:
            metrics = super().val(validator=make, **kwargs)
        except OSError as e:  # a full disk or read-only filesystem met by Ultralytics' writers (plots, JSON)
            if (error := as_write_error(e, made[-1].save_dir if made else kwargs.get("project"))) is None:
                raise
            if made and not kwargs.get("exist_ok"):  # the folder this run claimed, with what it could write
                shutil.rmtree(made[-1].save_dir, ignore_errors=True)
            raise error from e
        return metrics, made[-1]

    def val(self, validator=None, **kwargs: Any) -> DynamicDetMetrics:
        """Validate: both routes' metrics, plus the routed model at `threshold`/`hard_ratio`, or the trade-off table.

        Args:
            validator (type, optional): A custom validator class.
            **kwargs (Any): Ultralytics validation arguments plus one of `threshold`, `hard_ratio`, `gflops`,
                `latency` or `route`.

        Returns:
            (DynamicDetMetrics): `box` and the `(B)` keys are the routed model's at the routing asked for (the
                model's own threshold when none was given), `(E)` / `(H)` each route's; `.selected` holds the routed
                (or forced-route) metrics, `.routing` the `RoutingSpec` asked for (None: the model's default),
                `.tradeoff` the table rows when the model is calibrated and no routing was asked for.
        """
        kwargs = check_args("val", kwargs)  # dydet/cfg/default.yaml: checks, and the default hard_ratios
        hard_ratios = tuple(kwargs.pop("hard_ratios"))
        routing = self._pop_routing(kwargs)
        if self.exported is not None:  # an export folder: the same report, from the exported graphs
            from dydet.engine.exported_val import ExportedValidator

            validator = validator or ExportedValidator
            if routing is None and self.exported.route:
                routing = self.exported.default_routing()
        metrics, v = self._validate(validator, routing=routing, **drop_dydet_args(kwargs))
        metrics.tradeoff = None
        metrics.routing = routing
        if routing is not None:
            mr = metrics.selected.mean_results()
            LOGGER.info(
                f"Routed at {routing.describe()}{routing.cost_note()}: {metrics.hard_share():.1%} of these images "
                f"hard; mAP50 {mr[2]:.4f}, mAP50-95 {mr[3]:.4f}"
            )
        elif self.exported is not None:
            LOGGER.info("Export validated; the trade-off table over hard ratios comes from the .pt ('dydet val').")
        elif self.model.calibration:  # no routing asked for: the table over hard ratios
            self._report_tradeoff(metrics, v, hard_ratios)
        else:
            LOGGER.info("This model is not calibrated (no stage 2 yet): no trade-off table over hard ratios.")
        report_payoff(metrics, "on this validation split")
        return metrics

    def _report_tradeoff(
        self, metrics: DynamicDetMetrics, validator: RoutedValidator, hard_ratios: tuple[float, ...] | None = None
    ) -> None:
        """Print and save the trade-off table of a calibrated model for the validation run just done."""
        model = validator.dynamic_model().eval()
        images = validator.sample_images(16)
        latency = routed_latency(model, images)
        metrics.tradeoff = tradeoff_table(metrics, self.model.calibration, hard_ratios, latency=latency)
        LOGGER.info(
            "\nTrade-off over hard ratios (router vs random vs oracle routing):\n" + format_table(metrics.tradeoff)
        )
        try:
            save_tradeoff(metrics.tradeoff, Path(validator.save_dir))
        except OSError as e:
            if (error := as_write_error(e, validator.save_dir)) is None:
                raise
            raise error from e

    def predict(self, source=None, stream: bool = False, predictor=None, **kwargs: Any):
        """Predict with per-image routing; each `Results` carries `route` and `score`.

        Args:
            source (Any): Image, folder, glob, video, array or tensor, as for `ultralytics.YOLO.predict`.
            stream (bool): Return a generator.
            predictor (type, optional): A custom predictor class.
            **kwargs (Any): Ultralytics prediction arguments plus one of `threshold`, `hard_ratio`, `gflops`,
                `latency` or `route` (none: the model's own threshold).

        Returns:
            (list[Results] | Generator): Results with `.route` and `.score`.
        """
        check_run_args("predict", kwargs)
        kwargs = check_args("predict", kwargs)
        routing = self._pop_routing(kwargs)
        source = check_source(source)  # missing/empty/unreadable files, URLs offline: before any run folder
        if self.exported is not None:
            routing = routing or self.exported.default_routing()
            return predict_exported(self.exported, source, routing=routing, stream=stream, **kwargs)
        routing = routing or self.model.default_routing()
        if source is None:  # as Model.predict does, but here, so that the predictor run below gets it too
            LOGGER.warning(f"'source' is missing. Using 'source={ASSETS}'.")
            source = ASSETS
        # Model.predict sets up (or updates) self.predictor and returns its generator, not started yet: it is dropped
        # and the predictor run here instead, so that the routing reaches it as an argument of the call.
        super().predict(source=source, stream=True, predictor=predictor, **drop_dydet_args(kwargs))
        results = self.predictor(source=source, stream=True, routing=routing)
        return results if stream else list(results)

    def tune(self, use_ray: bool = False, iterations: int = 10, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Evolve training hyperparameters with Ultralytics' tuner, each trial a dydet stage-1 training.

        Trials and results (`tune_results.ndjson`, `best_hyperparameters.yaml`, the best trial's `weights/`) go to
        `<project>/<name or 'tune'>`; without `data` the embedded demo dataset is used, as for `train`.

        Args:
            use_ray (bool): Not supported (Ray Tune would train static models); must be False.
            iterations (int): Number of trials.
            *args (Any): Not supported.
            **kwargs (Any): Training arguments (`data`, `epochs`, `imgsz`, `project`, `name`, ...) and `space`, the
                search space as for Ultralytics (`{"lr0": (1e-5, 1e-1), ...}`).

        Returns:
            (dict): The best trial's record (`iteration`, `fitness`, `hyperparameters`, `datasets` with its metrics).
        """
        self._require_pytorch("tune")
        if use_ray or args:
            raise ArgumentError("tune: use_ray=True and positional arguments are not supported; dydet tunes in process")
        if str(kwargs.pop("stage", 1)) != "1":
            raise ArgumentError(
                "tune: each trial is a stage-1 training; leave out stage=, then train stage 2 on the best"
            )
        kwargs = check_args("tune", {**kwargs, "iterations": iterations})
        iterations = kwargs.pop("iterations")
        kwargs = prepare_train_args(kwargs, self.overrides)
        for key in DYDET_ONLY_KEYS:
            kwargs.pop(key, None)
        if "optimizer" not in (kwargs.get("space") or {}):
            kwargs.setdefault("optimizer", "AdamW")  # as Ultralytics' Model.tune
        args = {**self.overrides, **kwargs, "mode": "train"}
        weights = self.model if self.ckpt else None  # as train: a checkpoint seeds every trial, a YAML does not
        tuner = DynamicTuner(
            args=args, model=self.model, trainer=self._smart_load("trainer"), weights=weights, _callbacks=self.callbacks
        )
        return tuner(iterations=int(iterations))

    def track(self, source=None, stream: bool = False, persist: bool = False, **kwargs: Any):
        """Track objects with Ultralytics' trackers (BoT-SORT, ByteTrack), routing every frame by its router score.

        Args:
            source (Any): Video file, stream, folder of frames, ..., as for `ultralytics.YOLO.track`.
            stream (bool): Return a generator.
            persist (bool): Keep the trackers' state between calls (frames fed one call at a time).
            **kwargs (Any): Ultralytics tracking arguments (`tracker=botsort.yaml|bytetrack.yaml`, `conf`, ...) plus
                `threshold`, `hard_ratio` or `route`.

        Returns:
            (list[Results] | Generator): Tracked results (`boxes.id`) with `.route` and `.score` per frame.
        """
        self._require_pytorch("track")
        return super().track(source=source, stream=stream, persist=persist, **kwargs)

    def export(self, format: str = "onnx", **kwargs: Any) -> Path:
        """Export as split graphs (router + B1 features, easy head, hard head) that route in the runtime.

        Args:
            format (str): 'onnx' or 'openvino' (split graphs); other formats cannot route per image.
            **kwargs (Any): `imgsz` (default: the calibration's, else 640), `opset`, `quantize` (16: fp16
                weights; 8: int8 OpenVINO graphs quantized with NNCF on `data=`'s validation images, `fraction=` of
                them, the routing calibration recomputed on the int8 router; Ultralytics' `half` / `int8` too),
                `simplify` (ONNX),
                `nms=False` (an end-to-end model such as dy-yolo26: NMS-free graphs; `nms=True` is refused),
                `project` / `name` for the output folder (default: `<checkpoint stem>_<format>` beside the
                checkpoint), and one of `threshold`, `hard_ratio`, `gflops`, `latency` (the export's default
                threshold) or `route` (the export's default forced route). The model itself is not changed.

        Returns:
            (Path): The export folder (`router`, `easy`, `hard` graphs and `metadata.json`).
        """
        from dydet.engine.exporter import export_onnx, export_openvino

        self._require_pytorch("export")
        kwargs = check_args("export", kwargs)  # values first: a bad one is a usage error whatever else is missing
        if self.model.export_refusal:  # a family that cannot export (R-CNN): before any file
            raise ArgumentError(self.model.export_refusal)
        fmt = str(format).lower()
        if fmt not in {"onnx", "openvino"}:
            raise ArgumentError(
                f"format={format!r} is not supported: dydet exports format=onnx or format=openvino (split graphs that "
                "route)"
            )
        require_export_extra()
        check_imgsz(kwargs.get("imgsz"))
        precision = export_precision(kwargs)  # quantize=8|16, or Ultralytics' deprecated int8= / half=
        if precision == INT8:
            check_int8_args(fmt, kwargs.get("data"), kwargs.get("fraction", 1.0))
        if kwargs.get("nms") is True:
            raise ArgumentError(
                "nms=True (NMS inside the exported graph) is not available for split exports: leave nms unset (NMS "
                "runs in dydet's runtime) or, for an end-to-end model such as dy-yolo26, pass nms=False (NMS-free)"
            )
        if kwargs.get("dynamic"):
            raise ArgumentError(
                "dynamic=True is not available for split exports: their graphs take any batch size at a fixed image "
                "size; leave dynamic unset and export once per imgsz= you need"
            )
        given = {k: kwargs.get(k) for k in ROUTING_KEYS}  # an int8 export resolves them on its own calibration
        routing = self._pop_routing(kwargs)
        drop_dydet_args(kwargs)
        calibration = self.model.calibration or {}
        suffix = f"int8_{fmt}" if precision == INT8 else fmt  # beside the fp32 export, not over it
        imgsz = kwargs.get("imgsz") or calibration.get("imgsz") or 640
        if kwargs.get("project") or kwargs.get("name"):
            out = run_path(kwargs.get("project") or Path.cwd(), kwargs.get("name") or "export")
        elif self.ckpt_path:
            out = Path(self.ckpt_path).with_name(f"{Path(self.ckpt_path).stem}_{suffix}")
        else:
            out = Path.cwd() / f"export_{suffix}"
        if precision == INT8:
            path = export_openvino_int8(
                self.model,
                out,
                imgsz,
                kwargs["data"],
                kwargs.get("fraction", 1.0),
                opset=kwargs.get("opset"),
                routing_args=given,
                end2end=kwargs.get("nms") is False,
            )
        elif fmt == "openvino":
            path = export_openvino(
                self.model,
                out,
                imgsz,
                opset=kwargs.get("opset"),
                half=precision == 16,
                routing=routing,
                end2end=kwargs.get("nms") is False,
            )
        else:
            path = export_onnx(
                self.model,
                out,
                imgsz,
                opset=kwargs.get("opset"),
                half=precision == 16,
                simplify=bool(kwargs.get("simplify")),
                routing=routing,
                end2end=kwargs.get("nms") is False,  # as Ultralytics: nms=False exports an end-to-end head NMS-free
            )
        label = FORMAT_LABELS[fmt]
        LOGGER.info(f"Exported split {label} graphs to {path}; predict with: dydet predict model={path} source=...")
        return path

    def benchmark(self, **kwargs: Any):
        """Measure the routes and hard ratios against the family's static models, side by side (docs/BENCHMARKS.md).

        Args:
            **kwargs (Any): `baselines`, `hard_ratios`, `imgsz` (320), `batch` (8), `device` (cpu), `half` /
                `quantize=16`, `data` or `source` (benchmark images), `project` / `name` / `exist_ok`, `verbose`.

        Returns:
            (BenchmarkResult): Rows and ratios; files (speed.csv/.md/.png) in `result.files`.
        """
        self._require_pytorch("benchmark")
        check_run_args("benchmark", kwargs)
        if str(kwargs.get("data") or "").endswith((".yaml", ".yml")) or kwargs.get("data") == "":
            check_data(kwargs["data"], "benchmark")
        return run_benchmark(self.model, **kwargs)

    def _pop_routing(self, kwargs: dict[str, Any]) -> RoutingSpec | None:
        """Take the routing arguments out of `kwargs` and resolve them once (None: none given).

        A `latency=` budget is checked against the device and precision this call will run at: `device` (default:
        the one Ultralytics would pick) and `half`.
        """
        device = precision = None
        if kwargs.get("latency") is not None:
            if self.exported is not None:
                device = self.exported.device
                precision = self.exported.metadata.get("precision") or ("fp16" if self.exported.fp16 else "fp32")
            else:
                from ultralytics.utils.torch_utils import select_device

                device = select_device(kwargs.get("device") or "", verbose=False)
                precision = "fp16" if kwargs.get("half") and device.type != "cpu" else "fp32"
        return pop_routing(self.model, kwargs, device=device, precision=precision)

    def _require_pytorch(self, mode: str) -> None:
        """Refuse PyTorch-only modes on an export folder."""
        if self.exported is not None:
            raise ArgumentError(
                f"'{mode}' needs the PyTorch checkpoint: '{self.ckpt_path}' is an {self.exported.label} export "
                "(predict and val only)"
            )

    def route_summary(self, imgsz: int = 640) -> dict[str, dict[str, float]]:
        """Return parameters and GFLOPs of the easy route, the hard route and the router."""
        return self.model.route_summary(imgsz)


__all__ = ["DynamicModel"]
