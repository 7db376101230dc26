"""int8 export: the split graphs quantized with NNCF on real images, and the routing calibration taken again after it.

`export_openvino_int8` writes an OpenVINO export (`dydet.engine.exporter.export_openvino`) whose three graphs are
quantized post-training, each on its own real inputs:

    router  the calibration images, letterboxed as `dydet predict` letterboxes them
    easy    the B1 features that the fp32 router graph computes from those images
    hard    the images and the same B1 features

Kept in float (NNCF's ignored scope): the Detect head's decoding (DFL, anchors, strides, class sigmoid: one int8 scale
over box pixels and class scores would flatten the scores) and the router (its few MFLOPs gain nothing from int8 and
its score decides the route). The int8 trunk still moves the router's scores, so the thresholds of the `.pt`'s
calibration no longer give the hard ratios they promise: the export's calibration is taken again from the quantized
router graph on the validation images of `data` (the same letterbox as `dydet predict`), with per-route latencies
measured on the int8 graphs, and the default threshold is set to the hard ratio the model's own threshold had. So
`hard_ratio=`, `gflops=` and `latency=` mean on the int8 export what they mean on the `.pt`.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from ultralytics.cfg import QUANTIZE_ALIASES
from ultralytics.nn.modules import Detect
from ultralytics.utils import LOGGER

from dydet.data.checks import _image_formats, check_detection_dataset
from dydet.data.shortcuts import resolve_data
from dydet.engine.exported import ExportedPredictor
from dydet.engine.exporter import export_folder, export_openvino
from dydet.nn.backends.format import GRAPHS, IMAGES, METADATA_FILE
from dydet.nn.backends.openvino import core, import_openvino
from dydet.nn.backends.runtime import load_export
from dydet.routing import (
    DEFAULT_HARD_RATIO,
    RoutingSpec,
    hard_ratio_for_threshold,
    resolve_routing,
)
from dydet.utils.errors import ArgumentError, MissingFileError
from dydet.utils.flops import route_gflops
from dydet.utils.inputs import require_package
from dydet.utils.timing import interleaved_medians
from dydet.utils.torch_utils import fused_eval_copy

INT8 = 8
MAX_IMAGES = 300  # NNCF's default calibration subset: more images barely move the ranges
MAX_SCORE_IMAGES = 2000  # the router's calibration: enough for hard ratios to 0.05 %, spread over the split
CALIBRATION_SPLIT = "val"  # as Ultralytics' int8 export, and the split `model.calibration` is taken on
# what the ignored scope keeps in float, as regexes over the graphs' node names (torch module paths)
FLOAT_PARTS = {
    "router": r".*/router/.*",
    "head decoding": r".*/model\.({heads})/(?!cv2|cv3|one2one_cv2|one2one_cv3).*",
}
QUANTIZE_VALUES = "8 (int8), 16 (fp16 weights) or 32 (fp32)"


def export_precision(kwargs: dict[str, Any]) -> int | None:
    """Take the precision arguments out of export `kwargs`: `quantize`, and Ultralytics' deprecated `int8` / `half`.

    As in Ultralytics, an explicit `quantize=` wins over the old flags, and `int8` over `half`.

    Args:
        kwargs (dict): The export arguments, modified in place.

    Returns:
        (int | None): 8 (int8), 16 (fp16 weights) or None (fp32).

    Raises:
        ArgumentError: For a precision that split exports do not offer (e.g. w8a16).
    """
    int8, half, quantize = kwargs.pop("int8", None), kwargs.pop("half", None), kwargs.pop("quantize", None)

    def on(flag: Any) -> bool:
        return flag is not None and str(flag).strip().lower() not in {"none", "false", "0"}

    if quantize is None or quantize is False:
        return INT8 if on(int8) else 16 if on(half) else None
    scheme = QUANTIZE_ALIASES.get(str(quantize).strip().lower())
    if scheme not in (8, 16, 32):
        raise ArgumentError(f"quantize={quantize!r} is not available for a split export: use {QUANTIZE_VALUES}")
    return None if scheme == 32 else scheme


def check_int8_args(fmt: str, data: Any, fraction: Any) -> None:
    """Refuse an int8 export that cannot run, before any work: its format, a missing `data=`, a bad `fraction=`."""
    if fmt != "openvino":
        raise ArgumentError(
            f"quantize=8 is offered for format=openvino only, not format={fmt}: ONNX Runtime's static int8 saved only "
            "6 % of its fp32 time where it was measured (docs/BENCHMARKS.md, 'int8 on CPU'); use format=openvino "
            "quantize=8, or format=onnx at fp32"
        )
    if data in (None, ""):
        raise ArgumentError(
            "quantize=8 needs calibration images: pass data=<data YAML> (its validation images calibrate the int8 "
            "graphs and the router), e.g. data=coco8.yaml"
        )
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not fraction > 0:
        raise ArgumentError(
            f"fraction={fraction!r} is invalid: give the share of validation images to calibrate on, in (0, 1], or "
            "a count of images > 1"
        )
    require_package("nncf", "quantize=8 (int8 export)", "export")


def detect_layers(model: torch.nn.Module) -> list[int]:
    """Return the layer indices of the model's Detect heads (both routes'), whose decoding stays in float."""
    return [i for i, m in enumerate(model.model) if isinstance(m, Detect)]


def split_images(data: str | Path, split: str = CALIBRATION_SPLIT) -> list[Path]:
    """Return the image files of one split of a YOLO data YAML, sorted, as Ultralytics would load them.

    Args:
        data (str | Path): A data YAML (or an embedded dataset name: tiny, demo, bench).
        split (str): 'val' (the calibration split) or another split of the YAML.

    Returns:
        (list[Path]): The images.

    Raises:
        MissingFileError: When the split has no images.
    """
    cfg = check_detection_dataset(resolve_data(data))
    entries = cfg.get(split) or []
    formats = _image_formats()
    files: list[Path] = []
    for entry in [entries] if isinstance(entries, str) else entries:
        p = Path(entry)
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix[1:].lower() in formats and not f.name.startswith("."))
        elif p.is_file():
            lines = (line.strip() for line in p.read_text(encoding="utf-8-sig", errors="replace").splitlines())
            files += [p.parent / x if not Path(x).is_absolute() else Path(x) for x in lines if x]
    files = [f for f in files if f.suffix[1:].lower() in formats]
    if not files:
        raise MissingFileError(f"data={data}: its '{split}' split has no images to calibrate the int8 export on")
    return files


def pick(files: list[Path], fraction: float | int, cap: int | None = MAX_IMAGES) -> list[Path]:
    """Return an evenly spread subset: `fraction` of the files (a count when > 1), at most `cap` of them."""
    n = int(fraction) if fraction > 1 else max(1, round(fraction * len(files)))
    n = min(n, len(files), cap or len(files))
    return [files[i] for i in np.linspace(0, len(files) - 1, n).round().astype(int)]


class Letterbox:
    """Predict's preprocessing of an export: the same Ultralytics predictor code that `dydet predict` runs.

    Attributes:
        predictor (ExportedPredictor): A predictor set up on the export (only its preprocessing is used).
    """

    def __init__(self, export: Any):
        """Set up the prediction preprocessing of a loaded export (`ExportedDynamicModel`)."""
        self.predictor = ExportedPredictor(overrides={"imgsz": list(export.imgsz), "rect": True, "verbose": False})
        self.predictor.setup_model(export, verbose=False)
        self.predictor.imgsz = list(export.imgsz)

    def __call__(self, file: Path) -> np.ndarray:
        """Return one image file as the (1, C, H, W) float32 array in [0, 1] that predict feeds the router graph."""
        im = cv2.imread(str(file))
        if im is None:
            raise MissingFileError(f"cannot read calibration image '{file}'")
        return self.predictor.preprocess([im]).cpu().numpy().astype(np.float32)


def graph_inputs(export: Any, images: list[np.ndarray]) -> dict[str, list[dict[str, np.ndarray]]]:
    """Return each graph's calibration inputs: the images (router), the fp32 router's B1 features (tails)."""
    feeds: dict[str, list[dict[str, np.ndarray]]] = {g: [] for g in GRAPHS}
    for x in images:
        _, tensors = export.run_router(x)
        for g in GRAPHS:
            feeds[g].append({n: tensors[n] for n in export.graphs[g]["inputs"]} if g != "router" else {IMAGES: x})
    return feeds


def ignored_scope(graph: Any, heads: list[int]) -> tuple[Any, list[str]]:
    """Return NNCF's ignored scope for one graph (the float parts it holds) and the names of those parts."""
    import nncf

    names = [op.get_friendly_name() for op in graph.get_ops()]
    patterns, kept = [], []
    for part, pattern in FLOAT_PARTS.items():
        pattern = pattern.format(heads="|".join(map(str, heads)))
        if any(re.fullmatch(pattern, n) for n in names):
            patterns.append(pattern)
            kept.append(part)
    return nncf.IgnoredScope(patterns=patterns, validate=False), kept


def quantize_graph(graph: Any, feeds: list[dict[str, np.ndarray]], heads: list[int]) -> tuple[Any, list[str]]:
    """Quantize one OpenVINO graph with NNCF on its real inputs; return it and the parts kept in float."""
    import nncf

    scope, kept = ignored_scope(graph, heads)
    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(logging.WARNING)  # NNCF logs every operation it leaves unquantized at INFO
    try:
        quantized = nncf.quantize(
            graph,
            nncf.Dataset(feeds),
            preset=nncf.QuantizationPreset.MIXED,  # asymmetric activations: SiLU outputs are far from symmetric
            subset_size=len(feeds),
            ignored_scope=scope,
        )
    finally:
        logger.setLevel(level)
    return quantized, kept


def router_scores(export: Any, files: list[Path], letterbox: Letterbox) -> list[float]:
    """Return the export's router scores of image files, preprocessed as predict does (one image per call)."""
    return [float(export.run_router(letterbox(f))[0][0]) for f in files]


def route_latency(export: Any, reps: int = 20) -> dict[str, float]:
    """Return the export's batch-1 latency of each forced route (median ms), as the calibration measures a model's."""
    x = np.random.default_rng(0).random((1, export.channels, *export.imgsz), dtype=np.float32)
    return interleaved_medians(
        {r: (lambda r=r: export.routed(x, RoutingSpec.forced(r))) for r in ("easy", "hard")}, reps=reps, warmup=3
    )


def int8_calibration(
    model: torch.nn.Module, export: Any, scores: list[float], data: str | Path, imgsz: tuple[int, int]
) -> dict[str, Any]:
    """Return the int8 export's calibration: the model's record with the quantized router's scores and int8 latencies.

    GFLOPs are the model's (quantization does not change the operations), counted again at the export's image size
    when that differs from the calibration's.
    """
    cal = dict(model.calibration or {})
    gflops = cal.get("gflops")
    if not gflops or cal.get("imgsz") != imgsz[0] or imgsz[0] != imgsz[1]:
        deployed = fused_eval_copy(model).float()
        gflops = {part: route_gflops(deployed, part, list(imgsz)) for part in ("easy", "hard", "router")}
    return {
        **cal,
        "scores": sorted(scores),
        "imgsz": imgsz[0] if imgsz[0] == imgsz[1] else list(imgsz),
        "gflops": gflops,
        "latency_ms": route_latency(export),
        "device": "cpu",
        "precision": "int8",
        "data": str(data),
        "n_images": len(scores),
        "source": "int8 export: the quantized router graph's scores, letterboxed as predict does",
    }


def int8_routing(
    model: torch.nn.Module, calibration: dict[str, Any], fp32_scores: list[float], given: dict[str, Any]
) -> RoutingSpec:
    """Return the int8 export's default routing, resolved against its own calibration.

    `hard_ratio=`, `gflops=` and `latency=` are resolved on the int8 scores; `threshold=` and `route=` are kept as
    given. Without any, the threshold is the one that sends the same share of images hard as the model's own
    threshold does on the model's calibration (else on the fp32 router's scores of the same images).
    """
    spec = resolve_routing(calibration, **given, device="cpu", precision="int8")
    if spec is not None:
        return spec
    reference = model.calibration if (model.calibration or {}).get("scores") else {"scores": fp32_scores}
    p = hard_ratio_for_threshold(reference, float(model.threshold)) if reference["scores"] else DEFAULT_HARD_RATIO
    return resolve_routing(calibration, hard_ratio=p)


def export_openvino_int8(
    model: torch.nn.Module,
    out_dir: str | Path,
    imgsz: int | tuple[int, int] | list[int],
    data: str | Path,
    fraction: float | int = 1.0,
    opset: int | None = None,
    routing_args: dict[str, Any] | None = None,
    end2end: bool | None = None,
) -> Path:
    """Export a dynamic model as int8 OpenVINO split graphs that route like the `.pt`, with a recomputed calibration.

    Args:
        model (DynamicDetectionModel): The dynamic model (not modified).
        out_dir (str | Path): The export folder (replaced whole when done, as `export_openvino` does).
        imgsz (int | tuple[int, int] | list[int]): Input size.
        data (str | Path): Data YAML whose validation images calibrate the graphs and the router.
        fraction (float | int): Share of the validation images to quantize on (a count when > 1), at most
            `MAX_IMAGES`; the router's calibration takes every validation image (at most `MAX_SCORE_IMAGES`).
        opset (int, optional): ONNX opset of the intermediate graphs.
        routing_args (dict, optional): The user's `threshold` / `hard_ratio` / `route` / `gflops` / `latency`, resolved
            against the int8 calibration.
        end2end (bool, optional): NMS-free outputs of an end-to-end model, as for `export_openvino`.

    Returns:
        (Path): `out_dir`.
    """
    import nncf

    ov = import_openvino()
    t0 = time.perf_counter()
    files = pick(split_images(data), 1.0, MAX_SCORE_IMAGES)
    out_dir = Path(out_dir).resolve()
    with export_folder(out_dir) as int8_dir, tempfile.TemporaryDirectory(dir=int8_dir.parent) as tmp:
        fp32_dir = export_openvino(model, Path(tmp) / "fp32", imgsz, opset=opset, end2end=end2end)
        fp32 = load_export(fp32_dir)
        letterbox = Letterbox(fp32)
        images = [letterbox(f) for f in pick(files, fraction)]
        feeds = graph_inputs(fp32, images)
        heads = detect_layers(model)
        meta = json.loads((fp32_dir / METADATA_FILE).read_text())
        kept: dict[str, list[str]] = {}
        for g in GRAPHS:
            LOGGER.info(f"dydet export: quantizing the {g} graph on {len(images)} images with NNCF {nncf.__version__}")
            graph, kept[g] = quantize_graph(_read(fp32_dir, meta, g), feeds[g], heads)
            ov.save_model(graph, str(int8_dir / f"{g}.xml"), compress_to_fp16=False)
        (int8_dir / METADATA_FILE).write_text(json.dumps(meta, indent=2))
        int8 = load_export(int8_dir)
        fp32_scores = router_scores(fp32, files, letterbox) if not (model.calibration or {}).get("scores") else []
        scores = router_scores(int8, files, letterbox)
        calibration = int8_calibration(model, int8, scores, data, tuple(meta["imgsz"]))
        spec = int8_routing(model, calibration, fp32_scores, routing_args or {})
        meta.update(
            calibration=calibration,
            threshold=float(spec.threshold if spec.route is None else model.threshold),
            route=spec.route,
            routing=spec.describe() + spec.cost_note(),
            quantize=INT8,
            precision="int8",
            quantization={
                "tool": f"nncf {nncf.__version__}",
                "preset": "mixed",
                "images": len(images),
                "data": str(data),
                "split": CALIBRATION_SPLIT,
                "float": kept,
            },
        )
        (int8_dir / METADATA_FILE).write_text(json.dumps(meta, indent=2))
        del fp32, int8  # OpenVINO may map the weight files
    LOGGER.info(
        f"dydet export: int8 OpenVINO graphs written to {out_dir} ({time.perf_counter() - t0:.0f} s); calibration "
        f"recomputed on {len(scores)} images, default {meta['routing']}"
    )
    return out_dir


def _read(export_dir: Path, meta: dict[str, Any], graph: str) -> Any:
    """Read one IR graph of an export folder as an `openvino.Model`."""
    return core().read_model(str(export_dir / meta["graphs"][graph]["file"]))


__all__ = ["INT8", "MAX_IMAGES", "check_int8_args", "export_openvino_int8", "export_precision", "split_images"]
