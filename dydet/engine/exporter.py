"""Export as split graphs that an ONNX or OpenVINO runtime routes per image like the PyTorch model.

Why the graphs are split where they are: docs/METHOD.md, "Architecture" (B2 and H2 are not computed for easy images).

One dynamic model becomes three graphs, all with a dynamic batch axis, plus a metadata file (the folder layout and
`metadata.json` schema are in `dydet.nn.backends.format`):

    router.onnx     images -> score (B,) and the B1 features that the two heads read
    easy.onnx       B1 features -> y (B, 4 + nc, A): H1, the easy route's neck and Detect head
    hard.onnx       images + B1 features -> y (B, 4 + nc, A): CBLinear taps, B2 with CBFuse, H2
    metadata.json   kind/version/format, class names, image size, strides, default threshold (or forced `route`),
                    calibration, and every graph's file and input/output names

`export_openvino` converts the same three ONNX graphs to OpenVINO IR (`router.xml` + `router.bin`, ...).

`y` is the Detect eval output (decoded xywh boxes and class scores), the same as `model(x)[0]` in PyTorch; for an
end-to-end model (YOLO26) exported NMS-free (`end2end=True`, the CLI's `nms=False`) it is the one-to-one branch's
`(B, max_det, 6)` rows (x1, y1, x2, y2, score, class), which need no NMS (metadata `end2end: true`). Which B1
features each head needs is read from the layers' `f` indices, not hard-coded; the output of layer 0 (the input
identity that lets B2 re-read the image) is the image itself and is fed as `images`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from ultralytics.utils import LOGGER

from dydet.nn.backends.format import EXPORT_KIND, EXPORT_VERSION, GRAPHS, IMAGES, METADATA_FILE, OUTPUT, SCORE
from dydet.nn.tasks import DynamicDetectionModel
from dydet.routing import RoutingSpec
from dydet.utils.checkpoint import write_error
from dydet.utils.errors import ArgumentError, DydetError, WriteError
from dydet.utils.inputs import require_package
from dydet.utils.torch_utils import fused_eval_copy

MIN_OPSET = 11


def route_inputs(model: DynamicDetectionModel, route: str) -> list[int]:
    """Return the trunk (B1) layer indices whose outputs one route's tail reads (`model.tail_inputs(route)`)."""
    return model.tail_inputs(route)


def feature_name(model: DynamicDetectionModel, index: int) -> str:
    """Return the graph tensor name of B1 layer `index`'s output (`images` for the leading input identity)."""
    return IMAGES if index == 0 and isinstance(model.model[0], nn.Identity) else f"b1_{index}"


class _RouterGraph(nn.Module):
    """B1 and the router on a batch of images; returns the scores and the chosen B1 outputs (export wrapper)."""

    def __init__(self, model: DynamicDetectionModel, outputs: list[int]):
        super().__init__()
        self.net, self.outputs = model, outputs

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y, score = self.net.run_trunk(images)
        return (score, *(y[i] for i in self.outputs))


class _RouteGraph(nn.Module):
    """One route's layers after B1, fed with the B1 outputs they read; returns the Detect eval `y` (export wrapper)."""

    def __init__(self, model: DynamicDetectionModel, route: str, inputs: list[int]):
        super().__init__()
        self.net, self.route, self.inputs = model, route, inputs

    def forward(self, *feats: torch.Tensor) -> torch.Tensor:
        y = [None] * len(self.net.model)
        for i, f in zip(self.inputs, feats):
            y[i] = f
        out = self.net.run_tail(self.route, y)
        return out[0] if isinstance(out, (tuple, list)) else out


def _imgsz(model: DynamicDetectionModel, imgsz: int | tuple | list) -> tuple[int, int]:
    """Return (h, w), rounded up to a multiple of the model's largest stride as Ultralytics does."""
    from ultralytics.utils.checks import check_imgsz

    size = check_imgsz(imgsz, stride=int(max(model.stride)), min_dim=2)
    return int(size[0]), int(size[1])


def _prepare(model: DynamicDetectionModel, half: bool) -> tuple[DynamicDetectionModel, bool]:
    """Return a fused eval copy of the model in the export precision, and whether that precision is fp16."""
    net = fused_eval_copy(model).float()
    device = next(net.parameters()).device
    if half and device.type == "cpu":
        LOGGER.warning(
            "dydet export: half=True needs a CUDA model (fp16 ONNX graphs are for GPU runtimes); exporting fp32"
        )
        half = False
    return (net.half() if half else net), half


def _export_graph(
    module: nn.Module, args: tuple[torch.Tensor, ...], file: Path, inputs: list[str], outputs: list[str], opset: int
) -> None:
    """Trace one wrapper module to an ONNX file with a dynamic batch axis on every input and output."""
    dynamic = {name: {0: "batch"} for name in (*inputs, *outputs)}
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of torch.export, which Ultralytics does not use either;
        # the trace warnings concern the heads' cached anchors, constants at a fixed image size by design
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            module,
            args,
            str(file),
            opset_version=opset,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic,
            do_constant_folding=True,
            dynamo=False,
        )


def _simplify(file: Path) -> None:
    """Simplify an ONNX file in place with onnxslim when it is installed (skipped with a warning otherwise)."""
    try:
        import onnxslim
    except ImportError:
        LOGGER.warning("dydet export: simplify=True needs the 'onnxslim' package; writing unsimplified graphs")
        return
    import onnx

    onnx.save(onnxslim.slim(onnx.load(str(file))), str(file))


def _jsonable(value: Any) -> Any:
    """Convert numpy/torch scalars and arrays in the calibration record to plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store a {type(value).__name__} in the export metadata")


def _metadata(
    model: DynamicDetectionModel,
    imgsz: tuple[int, int],
    half: bool,
    opset: int,
    graphs: dict[str, dict],
    routing: RoutingSpec | None = None,
    end2end: bool = False,
) -> dict[str, Any]:
    """Return the metadata record that lets the runtime rebuild routing, prediction and `hard_ratio=`."""
    import ultralytics

    import dydet

    return {
        "kind": EXPORT_KIND,
        "version": EXPORT_VERSION,
        "format": "onnx",
        "dydet": dydet.__version__,
        "ultralytics": ultralytics.__version__,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "model": Path(model.yaml.get("yaml_file", "dy-model")).name,
        "task": "detect",
        "names": {str(k): v for k, v in model.names.items()},
        "channels": int(model.yaml.get("channels", 3)),
        "imgsz": list(imgsz),
        "strides": [int(s) for s in model.stride.tolist()],
        "half": half,
        "opset": opset,
        "stage": int(getattr(model, "stage", 0)),
        "threshold": float(routing.threshold if routing is not None and routing.route is None else model.threshold),
        "route": routing.route if routing is not None else None,
        "routing": routing.describe() + routing.cost_note() if routing is not None else None,
        "calibration": model.calibration,
        "end2end": bool(end2end),
        "graphs": graphs,
    }


def export_onnx(
    model: DynamicDetectionModel,
    out_dir: str | Path,
    imgsz: int | tuple[int, int] | list[int] = 640,
    opset: int | None = None,
    half: bool = False,
    simplify: bool = False,
    routing: RoutingSpec | None = None,
    verbose: bool = True,
    end2end: bool | None = None,
) -> Path:
    """Export a dynamic model as router/easy/hard ONNX graphs plus `metadata.json`, for routing at run time.

    The model itself is not modified (a fused eval copy is traced). Every graph has a dynamic batch axis; the image
    size is fixed at export.

    Args:
        model (DynamicDetectionModel): The dynamic model (weights as trained; calibration and threshold are kept).
        out_dir (str | Path): Directory to write into (created; existing graph files are overwritten).
        imgsz (int | tuple[int, int] | list[int]): Input size, an int for square or (h, w); rounded up to a multiple
            of the largest stride.
        opset (int, optional): ONNX opset; defaults to the newest one Ultralytics uses with this torch.
        half (bool): Export fp16 graphs (needs the model on CUDA; falls back to fp32 with a warning on CPU).
        simplify (bool): Simplify the graphs with onnxslim when installed.
        routing (RoutingSpec, optional): The export's default routing: a threshold, or a forced route (stored in
            the metadata as `threshold` / `route`); None keeps the model's own threshold. The model is not changed.
        verbose (bool): Log where the graphs were written.
        end2end (bool, optional): For an end-to-end model (YOLO26): export the NMS-free one-to-one outputs (True) or
            the one-to-many outputs that need NMS (False); None keeps the model's current selection.

    Returns:
        (Path): `out_dir`.

    Examples:
        >>> export_onnx(model, "runs/export/final_onnx", imgsz=320)
        >>> from dydet.nn.backends.runtime import load_export
        >>> y = load_export("runs/export/final_onnx")(images, threshold=0.4)
    """
    onnx = require_package("onnx", "ONNX export", "export")
    from ultralytics.utils.export.engine import best_onnx_opset

    if not isinstance(model, DynamicDetectionModel):
        raise ArgumentError(f"export_onnx needs a dydet DynamicDetectionModel, got a {type(model).__name__}")
    opset = opset or best_onnx_opset(onnx)
    if opset < MIN_OPSET:
        raise ArgumentError(f"opset={opset} is too old for a dydet export: use opset>={MIN_OPSET}")
    size = _imgsz(model, imgsz)
    selected = model.end2end
    try:
        if end2end is not None:
            model.end2end = end2end  # the fused copy keeps only the selected branch of each head
        net, half = _prepare(model, half)
    finally:
        model.end2end = selected
    final = Path(out_dir)
    with export_folder(final) as out_dir:
        needs = {route: route_inputs(net, route) for route in ("easy", "hard")}
        feats = sorted({i for v in needs.values() for i in v if feature_name(net, i) != IMAGES})
        param = next(net.parameters())
        im = torch.zeros(2, net.yaml.get("channels", 3), *size, device=param.device, dtype=param.dtype)
        graphs = {}
        with torch.no_grad():
            net(im, route="easy")  # caches the heads' anchors for this size, so they are traced as constants
            net(im, route="hard")
            y, _ = net.run_trunk(im, score=False)
            router_out = [SCORE, *(feature_name(net, i) for i in feats)]
            _export_graph(_RouterGraph(net, feats), (im,), out_dir / "router.onnx", [IMAGES], router_out, opset)
            graphs["router"] = {"file": "router.onnx", "inputs": [IMAGES], "outputs": router_out}
            for route, inputs in needs.items():
                names = [feature_name(net, i) for i in inputs]
                file = out_dir / f"{route}.onnx"
                _export_graph(
                    _RouteGraph(net, route, inputs), tuple(y[i] for i in inputs), file, names, [OUTPUT], opset
                )
                graphs[route] = {"file": file.name, "inputs": names, "outputs": [OUTPUT]}
        for g in graphs.values():
            onnx.checker.check_model(str(out_dir / g["file"]))
            if simplify:
                _simplify(out_dir / g["file"])
        meta = _metadata(model, size, half, opset, graphs, routing, end2end=net.end2end)
        (out_dir / METADATA_FILE).write_text(json.dumps(meta, indent=2, default=_jsonable))
    if verbose:
        size_text = f"{size[0]}x{size[1]}"
        LOGGER.info(f"dydet export: router/easy/hard ONNX graphs (opset {opset}, {size_text}) written to {final}")
    return final


@contextlib.contextmanager
def export_folder(out_dir: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `out_dir` to write an export into; it then replaces `out_dir` whole.

    A reader never sees a half-written export, a failed export leaves the previous one and no partial files, and a
    folder that cannot be written (read-only, full disk, not a real folder such as /proc) is a one-line `WriteError`.
    """
    out_dir = Path(out_dir).resolve()
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(out_dir.parent, os.W_OK | os.X_OK):  # as the run folders: root may write anyway
            raise PermissionError(errno.EACCES, "read-only or not writable")
        with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.") as tmp:
            new = Path(tmp) / "export"
            new.mkdir()
            yield new
            if out_dir.exists() and not out_dir.is_dir():
                raise ArgumentError(f"cannot export to '{out_dir}': a file of that name exists; choose another name=")
            if out_dir.exists():
                os.replace(out_dir, Path(tmp) / "previous")
            os.replace(new, out_dir)
    except OSError as e:
        cause = e.__cause__ if isinstance(e, WriteError) and isinstance(e.__cause__, OSError) else e  # nested export
        if isinstance(cause, DydetError):
            raise
        raise write_error(out_dir, cause) from cause


def export_openvino(
    model: DynamicDetectionModel,
    out_dir: str | Path,
    imgsz: int | tuple[int, int] | list[int] = 640,
    opset: int | None = None,
    half: bool = False,
    routing: RoutingSpec | None = None,
    end2end: bool | None = None,
) -> Path:
    """Export a dynamic model as router/easy/hard OpenVINO IR graphs plus `metadata.json`, for routing on CPUs.

    The three split ONNX graphs of `export_onnx` are read by OpenVINO and saved as IR, so both formats hold the same
    graphs and metadata (with `format: openvino`). The folder is written whole into a temporary folder beside
    `out_dir` and then renamed: a reader never sees a half-written export, and a failed export leaves the old one.

    Args:
        model (DynamicDetectionModel): The dynamic model (weights as trained; calibration and threshold are kept).
        out_dir (str | Path): The export folder (replaced if it exists).
        imgsz (int | tuple[int, int] | list[int]): Input size, an int for square or (h, w); rounded up to a multiple
            of the largest stride.
        opset (int, optional): ONNX opset of the intermediate graphs.
        half (bool): Store the weights in fp16 (`compress_to_fp16`) and let OpenVINO pick the inference precision
            (bf16 on CPUs with AVX-512 bf16 or AMX, else fp32); without it the runtime computes in fp32 like PyTorch.
        routing (RoutingSpec, optional): The export's default routing, as for `export_onnx`.
        end2end (bool, optional): NMS-free outputs of an end-to-end model, as for `export_onnx`.

    Returns:
        (Path): `out_dir`.

    Raises:
        ImportError: When OpenVINO is not installed (the message names the pip extra).

    Examples:
        >>> export_openvino(model, "runs/export/final_openvino", imgsz=320)
        >>> from dydet.nn.backends.runtime import load_export
        >>> y = load_export("runs/export/final_openvino")(images, threshold=0.4)
    """
    from dydet.nn.backends.openvino import core, import_openvino

    ov = import_openvino()  # before any work: a one-line error naming the pip extra when it is missing
    out_dir = Path(out_dir).resolve()
    with export_folder(out_dir) as ir_dir, tempfile.TemporaryDirectory(dir=ir_dir.parent) as tmp:
        onnx_dir = export_onnx(
            model, Path(tmp) / "onnx", imgsz, opset=opset, routing=routing, verbose=False, end2end=end2end
        )
        meta = json.loads((onnx_dir / METADATA_FILE).read_text())
        for g in GRAPHS:
            graph = core().read_model(str(onnx_dir / meta["graphs"][g]["file"]))
            ov.save_model(graph, str(ir_dir / f"{g}.xml"), compress_to_fp16=bool(half))
            meta["graphs"][g]["file"] = f"{g}.xml"
        precision = "auto" if half else "f32"  # auto: OpenVINO's choice, bf16 on CPUs that have it
        meta.update(format="openvino", openvino=ov.__version__, weights_fp16=bool(half), inference_precision=precision)
        (ir_dir / METADATA_FILE).write_text(json.dumps(meta, indent=2))
    size = "x".join(str(s) for s in meta["imgsz"])
    LOGGER.info(f"dydet export: router/easy/hard OpenVINO IR graphs ({size}) written to {out_dir}")
    return out_dir


__all__ = [
    "EXPORT_KIND",
    "EXPORT_VERSION",
    "METADATA_FILE",
    "export_onnx",
    "export_openvino",
    "feature_name",
    "route_inputs",
]
