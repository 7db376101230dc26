"""Run a split ONNX export (see `dydet.engine.exporter`) with onnxruntime, routing per image like the PyTorch model.

`OnnxDynamicModel` runs the router graph on the whole batch, then the easy graph on the images scoring at or above
the threshold and the hard graph on the others, and only the graphs that have images to process. `OnnxPredictor`
puts it behind the Ultralytics prediction loop so that `Results` carry `route` and `score` as with a `.pt` model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ultralytics.utils import LOGGER

from dydet.engine.exporter import EXPORT_KIND, EXPORT_VERSION, GRAPHS, IMAGES, METADATA_FILE, OUTPUT, SCORE
from dydet.engine.predictor import DynamicPredictor
from dydet.engine.routing import DEFAULT_THRESHOLD, Routing, RoutingSpec
from dydet.nn.family import RoutedRunner
from dydet.utils.checks import check_route, check_threshold
from dydet.utils.errors import ArgumentError, CheckpointError, MissingFileError

_EXPORT_HINT = "re-export it with 'dydet export model=final.pt format=onnx'"


class InvalidExportError(CheckpointError):
    """A dydet ONNX export directory that is incomplete, corrupt, or does not match its metadata."""


def is_export_dir(path: str | Path) -> bool:
    """Return True if `path` is a directory holding a dydet export's metadata file (cheap check, no validation)."""
    return Path(path).is_dir() and (Path(path) / METADATA_FILE).is_file()


def read_metadata(export_dir: str | Path) -> dict[str, Any]:
    """Read and check an export's `metadata.json`: present, JSON, of dydet's kind and of a supported version.

    Args:
        export_dir (str | Path): The export directory.

    Returns:
        (dict): The metadata, with integer class-name keys.

    Raises:
        FileNotFoundError: If the directory or its metadata file is missing.
        InvalidExportError: If the metadata is unreadable, of another kind or version, or lacks required fields.
    """
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        raise MissingFileError(f"ONNX export directory '{export_dir}' not found: {_EXPORT_HINT}")
    file = export_dir / METADATA_FILE
    if not file.is_file():
        raise MissingFileError(f"'{export_dir}' is not a dydet ONNX export: {METADATA_FILE} is missing; {_EXPORT_HINT}")
    try:
        meta = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidExportError(f"'{file}' is not valid JSON ({e}); {_EXPORT_HINT}") from None
    if not isinstance(meta, dict) or meta.get("kind") != EXPORT_KIND:
        kind = meta.get("kind") if isinstance(meta, dict) else type(meta).__name__
        raise InvalidExportError(f"'{file}' describes a {kind!r} export, not a {EXPORT_KIND!r} one; {_EXPORT_HINT}")
    if meta.get("version") != EXPORT_VERSION:
        raise InvalidExportError(
            f"'{file}' is export format version {meta.get('version')!r}; this dydet reads version {EXPORT_VERSION} "
            f"only: {_EXPORT_HINT}"
        )
    missing = [k for k in ("names", "imgsz", "strides", "graphs", "threshold") if k not in meta]
    if missing:
        raise InvalidExportError(f"'{file}' lacks {', '.join(missing)}; {_EXPORT_HINT}")
    problems = _graph_problems(meta["graphs"])
    if problems:
        raise InvalidExportError(f"'{file}' is inconsistent: {'; '.join(problems)}; {_EXPORT_HINT}")
    meta["names"] = {int(k): v for k, v in meta["names"].items()}
    return meta


def _graph_problems(graphs: Any) -> list[str]:
    """Return what is wrong with the metadata's graph table: entries, router outputs, head inputs and outputs."""
    if not isinstance(graphs, dict):
        return ["'graphs' is not a table"]
    keys = {"file", "inputs", "outputs"}
    bad = [g for g in GRAPHS if not isinstance(graphs.get(g), dict) or not keys <= set(graphs[g])]
    if bad:
        return [f"graph entries {bad} are missing or lack file/inputs/outputs"]
    router, problems = graphs["router"], []
    if router["inputs"] != [IMAGES] or router["outputs"][:1] != [SCORE]:
        problems.append(f"the router must map ['{IMAGES}'] to ['{SCORE}', ...]")
    available = {IMAGES, *router["outputs"][1:]}
    for g in ("easy", "hard"):
        problems += [f"{g} input '{n}' is produced by no graph" for n in graphs[g]["inputs"] if n not in available]
        if graphs[g]["outputs"] != [OUTPUT]:
            problems.append(f"{g} outputs {graphs[g]['outputs']} instead of ['{OUTPUT}']")
    return problems


def _device(device: str | torch.device) -> torch.device:
    """Return a torch device for 'cpu', 'cuda', 'cuda:1', '0' or a `torch.device`."""
    return torch.device(f"cuda:{device}" if str(device).isdigit() else device)


def default_device(device: str | torch.device | None) -> torch.device:
    """Return the device to run an export on: the one asked for, else CUDA when onnxruntime can use it, else CPU."""
    import onnxruntime as ort

    if device not in (None, ""):
        from ultralytics.utils.torch_utils import select_device

        return select_device(device, verbose=False)
    cuda = torch.cuda.is_available() and "CUDAExecutionProvider" in ort.get_available_providers()
    return torch.device("cuda:0" if cuda else "cpu")


def _providers(device: torch.device) -> list:
    """Return onnxruntime execution providers for a device, with a clear error when onnxruntime cannot use it."""
    import onnxruntime as ort

    if device.type == "cpu":
        return ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
    available = ", ".join(ort.get_available_providers())
    raise ArgumentError(
        f"device={str(device)!r} is not available to onnxruntime (providers: {available}); use device=cpu or "
        "install onnxruntime-gpu"
    )


def _session_options(threads: int):
    """Return onnxruntime session options: `threads` intra-op threads (0: onnxruntime's default), no spin-waiting.

    The graphs run one after another, each session with its own thread pool; threads left spinning after the router
    graph compete with the head graph's threads for the same cores (measured 4-5x slower on a 2-core CPU).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _session(file: Path, providers: list, graph: dict[str, list[str]], options):
    """Open one graph and check that its input/output names are the ones the metadata promises."""
    import onnxruntime as ort

    if not file.is_file():
        raise MissingFileError(f"ONNX export is incomplete: '{file}' is missing; {_EXPORT_HINT}")
    try:
        session = ort.InferenceSession(str(file), options, providers=providers)
    except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf/InvalidGraph types
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InvalidExportError(f"'{file}' is not a loadable ONNX graph ({reason}); {_EXPORT_HINT}") from None
    for side, got in (("inputs", session.get_inputs()), ("outputs", session.get_outputs())):
        names = [t.name for t in got]
        if names != list(graph[side]):
            raise InvalidExportError(
                f"'{file}' {side} are {names} but {METADATA_FILE} says {list(graph[side])}: the graph does not "
                f"belong to this export; {_EXPORT_HINT}"
            )
    return session


class OnnxDynamicModel(RoutedRunner):
    """A split ONNX export run with onnxruntime, routing per image in a batch like `DynamicDetectionModel`.

    Its trunk is the router graph (B1 + router), its tails the easy and hard graphs; `routed` (from `RoutedRunner`)
    routes with `dydet.engine.routing.route_batch`, like the PyTorch model.

    Attributes:
        export_dir (Path): The export directory.
        metadata (dict): Its metadata.
        names (dict[int, str]): Class names.
        imgsz (tuple[int, int]): The (h, w) input size the graphs were exported at.
        stride (int): Largest stride (what Ultralytics' letterbox needs); `strides` holds all of them.
        calibration (dict | None): The calibration record, which serves `hard_ratio=` through `resolve_threshold`.
        threshold (float): Default score cut (easy if score >= threshold).
        route (str | None): Default forced route of the export (metadata `route`), None: the router decides.
        sessions (dict[str, onnxruntime.InferenceSession]): The `router`, `easy` and `hard` sessions.

    Examples:
        >>> model = load_export("runs/export/final_onnx")
        >>> y = model(images, threshold=0.4)  # (B, 4 + nc, A), images in their original order
        >>> y, routing = model.routed(images, RoutingSpec.at(0.4))
        >>> routing.routes
    """

    def __init__(self, export_dir: str | Path, device: str | torch.device = "cpu", threads: int = 0):
        """Load and check an export directory (see `load_export` for the arguments and the errors raised)."""
        self.export_dir = Path(export_dir)
        self.metadata = meta = read_metadata(self.export_dir)
        self.device = _device(device)
        providers, options = _providers(self.device), _session_options(threads)
        self.graphs = meta["graphs"]
        self.sessions = {
            g: _session(self.export_dir / str(self.graphs[g]["file"]), providers, self.graphs[g], options)
            for g in GRAPHS
        }
        self.names = meta["names"]
        self.imgsz = tuple(int(s) for s in meta["imgsz"])
        self.strides = [int(s) for s in meta["strides"]]
        self.stride = max(self.strides)
        self.channels = int(meta.get("channels", 3))
        self.fp16 = bool(meta.get("half", False))
        self.calibration = meta.get("calibration")
        self.threshold = check_threshold(meta.get("threshold", DEFAULT_THRESHOLD))
        self.route = check_route(meta.get("route"))
        self._dtype = np.float16 if self.fp16 else np.float32

    # ------------------------------------------------------------------------------------------------------- running
    def _as_input(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        """Return the batch as a contiguous array of the graphs' dtype, checking its shape against the export."""
        a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        if a.ndim != 4 or a.shape[1] != self.channels or tuple(a.shape[2:]) != self.imgsz:
            raise ArgumentError(
                f"input of shape {tuple(a.shape)} does not fit this ONNX export: it takes (B, {self.channels}, "
                f"{self.imgsz[0]}, {self.imgsz[1]}) images (re-export with another imgsz= for other sizes)"
            )
        return np.ascontiguousarray(a, dtype=self._dtype)

    def run_router(self, images: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Run B1 + router on a batch; return the (B,) scores and the named tensors the heads can read."""
        names = self.graphs["router"]["outputs"]
        out = self.sessions["router"].run(names, {IMAGES: images})
        return out[0].astype(np.float32).reshape(-1), {IMAGES: images, **dict(zip(names[1:], out[1:]))}

    def run_route(self, route: str, tensors: dict[str, np.ndarray], index: np.ndarray | None = None) -> np.ndarray:
        """Run one route's graph on the named B1 tensors, restricted to the batch positions `index` when given."""
        feeds = {n: tensors[n] if index is None else tensors[n][index] for n in self.graphs[route]["inputs"]}
        return self.sessions[route].run([OUTPUT], feeds)[0]

    def run_trunk(self, x: torch.Tensor | np.ndarray, score: bool = True) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Run the router graph (B1 + router; one graph, so it scores even when a route is forced)."""
        score_, tensors = self.run_router(self._as_input(x))
        return tensors, score_

    def run_tail(self, route: str, state: dict[str, np.ndarray], index: np.ndarray | None = None) -> np.ndarray:
        """Run one route's graph on the router graph's tensors, for the batch positions `index` (None: all)."""
        return self.run_route(route, state, index)

    def default_routing(self) -> RoutingSpec:
        """Return the export's default routing: its forced route if it has one, else its threshold."""
        if self.route:
            return RoutingSpec.forced(self.route)
        return super().default_routing()

    def routed(
        self, x: torch.Tensor | np.ndarray, routing: RoutingSpec | float | None = None
    ) -> tuple[torch.Tensor, Routing]:
        """Route a batch (see `RoutedRunner.routed`); the output `y` (B, 4 + nc, A) is a tensor on `self.device`."""
        y, record = super().routed(x, routing)
        return torch.from_numpy(y).to(self.device), record

    def __call__(
        self, x: torch.Tensor | np.ndarray, threshold: float | None = None, route: str | None = None
    ) -> torch.Tensor:
        """Route every image of a batch and run only the graphs its images need.

        Args:
            x (torch.Tensor | np.ndarray): (B, C, H, W) images in [0, 1], at the export's image size.
            threshold (float, optional): Score cut in [0, 1]; easy if score >= threshold. Defaults to the export's
                routing; 0 sends everything easy, 1 everything hard.
            route (str, optional): 'easy' or 'hard' to force one route for the whole batch.

        Returns:
            (torch.Tensor): The Detect output `y` (B, 4 + nc, A) in the original image order (on `self.device`).
        """
        spec = RoutingSpec.forced(route) if route else None if threshold is None else RoutingSpec.at(threshold)
        return self.routed(x, spec)[0]

    def __repr__(self) -> str:
        return f"OnnxDynamicModel('{self.export_dir}', imgsz={self.imgsz}, nc={len(self.names)})"


def load_export(path: str | Path, device: str | torch.device = "cpu", threads: int = 0) -> OnnxDynamicModel:
    """Load a dydet ONNX export directory, with one-line errors that say what is wrong.

    Args:
        path (str | Path): The export directory (the one `export_onnx` wrote).
        device (str | torch.device): 'cpu', or a CUDA device when onnxruntime-gpu is installed.
        threads (int): Intra-op threads per graph; 0 lets onnxruntime choose (one per physical core).

    Returns:
        (OnnxDynamicModel): The runtime model.

    Raises:
        FileNotFoundError: A missing directory, metadata file or graph file.
        InvalidExportError: A corrupt graph, metadata of another kind or version, or graphs whose input/output names
            do not match the metadata.
    """
    return OnnxDynamicModel(path, device=device, threads=threads)


# ---------------------------------------------------------------------------------------------------- prediction
class OnnxBackend:
    """The part of Ultralytics' `AutoBackend` interface that the prediction loop uses, around an `OnnxDynamicModel`.

    Attributes:
        model (OnnxDynamicModel): The runtime model (`DynamicPredictor.dynamic_model()` finds it here).
    """

    format = "onnx"
    pt = False
    jit = False
    dynamic = False  # fixed image size: the predictor letterboxes to `imgsz`
    end2end = False
    base_model = False  # no activation maps / embeddings / TTA
    prefetch = False

    def __init__(self, model: OnnxDynamicModel):
        """Wrap a loaded export."""
        self.model = model
        self.names, self.stride, self.imgsz = model.names, model.stride, list(model.imgsz)
        self.fp16, self.device, self.channels = model.fp16, model.device, model.channels
        self.batch = None  # any batch size

    def __call__(self, im: torch.Tensor, *args, **kwargs):
        """Run the model at its default routing on a preprocessed batch (Ultralytics' `augment`/`embed` are ignored)."""
        return self.model(im)

    forward = __call__

    def warmup(self, imgsz: tuple = (1, 3, 640, 640), im: torch.Tensor | None = None) -> None:
        """Do nothing: onnxruntime needs no warm-up pass."""

    def eval(self) -> OnnxBackend:
        """Return self (already inference-only)."""
        return self


class OnnxPredictor(DynamicPredictor):
    """`DynamicPredictor` over a split ONNX export: same preprocessing, NMS and `Results` with `route` and `score`."""

    def setup_model(self, model: str | Path | OnnxDynamicModel | None, verbose: bool = True) -> None:
        """Load the export (a directory or an `OnnxDynamicModel`) behind an AutoBackend-like wrapper."""
        model = model if model is not None else self.args.model
        if not isinstance(model, OnnxDynamicModel):
            model = load_export(model, device=default_device(self.args.device))
        self.model = OnnxBackend(model)
        self.device = self.model.device


def predict_exported(
    export_dir: str | Path | OnnxDynamicModel,
    source: Any = None,
    routing: RoutingSpec | None = None,
    **predict_kwargs: Any,
) -> list:
    """Predict with a split ONNX export through the Ultralytics prediction loop, routing per image.

    Args:
        export_dir (str | Path | OnnxDynamicModel): The export directory, or an already loaded export.
        source (Any): Image, folder, glob, video, array or tensor, as for `ultralytics.YOLO.predict`.
        routing (RoutingSpec, optional): The routing, already resolved (as `DynamicYOLO.predict` passes it). Without
            it, `threshold=` / `hard_ratio=` / `route=` / `gflops=` / `latency=` among `predict_kwargs` are resolved
            here, once, against the export's calibration; with none of them, the export's own routing is used.
        **predict_kwargs (Any): Ultralytics prediction arguments (conf, iou, batch, device, save, project, ...;
            `stream=True` returns a generator). `imgsz` is fixed by the export.

    Returns:
        (list[Results] | Generator): Results with `.route` and `.score`.

    Examples:
        >>> results = predict_exported("runs/export/final_onnx", "images/", hard_ratio=0.3)
        >>> results[0].route, results[0].score
    """
    from dydet.engine.args import drop_dydet_args, pop_routing

    stream = predict_kwargs.pop("stream", False)
    model = export_dir if isinstance(export_dir, OnnxDynamicModel) else None
    if model is None:
        model = load_export(export_dir, device=default_device(predict_kwargs.get("device")))
    if routing is None:
        routing = pop_routing(model, predict_kwargs, device=model.device, precision="fp16" if model.fp16 else "fp32")
    drop_dydet_args(predict_kwargs)  # also makes `project` absolute
    imgsz = predict_kwargs.pop("imgsz", None)
    if imgsz is not None and list(np.broadcast_to(imgsz, 2)) != list(model.imgsz):
        LOGGER.warning(f"imgsz={imgsz} ignored: this ONNX export takes {model.imgsz[0]}x{model.imgsz[1]} images")
    args = {"conf": 0.25, "batch": 1, "save": False, "rect": True, **predict_kwargs, "mode": "predict"}
    predictor = OnnxPredictor(overrides=args)
    predictor.setup_model(model, verbose=False)
    results = predictor(source=source, stream=True, routing=routing or model.default_routing())
    return results if stream else list(results)


__all__ = [
    "InvalidExportError",
    "OnnxBackend",
    "OnnxDynamicModel",
    "OnnxPredictor",
    "default_device",
    "is_export_dir",
    "load_export",
    "predict_exported",
    "read_metadata",
]
