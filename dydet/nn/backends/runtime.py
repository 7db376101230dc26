"""Run a split export (see `dydet.engine.exporter`) with any runtime, routing per image like the PyTorch model.

`ExportedDynamicModel` runs the router graph on the whole batch, then the easy graph on the images scoring at or
above the threshold and the hard graph on the others, and only the graphs that have images to process. The graphs
are opened by a backend chosen by the export's `format`: onnxruntime sessions (`dydet.nn.backends.onnx`) or OpenVINO
compiled models (`dydet.nn.backends.openvino`), both behind one session interface, `GraphSession`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from dydet.nn.backends.format import FORMAT_LABELS, GRAPHS, IMAGES, OUTPUT, read_metadata
from dydet.nn.family import RoutedRunner
from dydet.routing import DEFAULT_THRESHOLD, RoutingSpec, as_routing, check_route, check_threshold
from dydet.utils.errors import ArgumentError

BACKENDS = {"onnx": "dydet.nn.backends.onnx", "openvino": "dydet.nn.backends.openvino"}


class GraphSession(Protocol):
    """What the runtime needs of one loaded graph (an `onnxruntime.InferenceSession` is one as it is)."""

    def run(self, output_names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the graph on named input arrays and return the named outputs, in order."""
        ...


def backend(fmt: str):
    """Return the backend module of an export format: `resolve_device`, `default_device` and `session_opener`."""
    return importlib.import_module(BACKENDS[fmt])


def default_device(device: str | torch.device | None, export_dir: str | Path) -> torch.device:
    """Return the device to run an export on: the one asked for, else the best one its runtime can use."""
    return backend(read_metadata(export_dir)["format"]).default_device(device)


class ExportedDynamicModel(RoutedRunner):
    """A split export run with its runtime, routing per image in a batch like `DynamicDetectionModel`.

    Its trunk is the router graph (B1 + router), its tails the easy and hard graphs; `routed` (from `RoutedRunner`)
    routes with `dydet.routing.route_batch`, like the PyTorch model.

    Attributes:
        export_dir (Path): The export directory.
        metadata (dict): Its metadata.
        format (str): 'onnx' or 'openvino'.
        names (dict[int, str]): Class names.
        imgsz (tuple[int, int]): The (h, w) input size the graphs were exported at.
        stride (int): Largest stride (what Ultralytics' letterbox needs); `strides` holds all of them.
        calibration (dict | None): The calibration record, which serves `hard_ratio=` and budgets
            (`dydet.routing.resolve_routing`).
        threshold (float): Default score cut (easy if score >= threshold).
        route (str | None): Default forced route of the export (metadata `route`), None: the router decides.
        end2end (bool): The graphs give NMS-free `(B, max_det, 6)` rows (an end-to-end model exported with nms=False).
        sessions (dict[str, GraphSession]): The `router`, `easy` and `hard` graphs.

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
        self.format = meta["format"]
        runtime = backend(self.format)
        self.device = runtime.resolve_device(device)
        open_graph = runtime.session_opener(self.device, threads, meta)
        self.graphs = meta["graphs"]
        self.sessions: dict[str, GraphSession] = {
            g: open_graph(self.export_dir / str(self.graphs[g]["file"]), self.graphs[g]) for g in GRAPHS
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
        self.end2end = bool(meta.get("end2end", False))  # NMS-free (B, max_det, 6) outputs (YOLO26, nms=False)
        self._dtype = np.float16 if self.fp16 else np.float32

    @property
    def label(self) -> str:
        """Return the format's display name ('ONNX', 'OpenVINO')."""
        return FORMAT_LABELS[self.format]

    # ------------------------------------------------------------------------------------------------------- running
    def _as_input(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        """Return the batch as a contiguous array of the graphs' dtype, checking its shape against the export."""
        a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        if a.ndim != 4 or a.shape[1] != self.channels or tuple(a.shape[2:]) != self.imgsz:
            raise ArgumentError(
                f"input of shape {tuple(a.shape)} does not fit this {self.label} export: it takes (B, {self.channels}, "
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
            return RoutingSpec(route=self.route, source="route")  # checked when the export was loaded
        return super().default_routing()

    def finish_routed(self, state: dict[str, np.ndarray], out: np.ndarray) -> torch.Tensor:
        """Return the routed output `y` (B, 4 + nc, A) as a tensor on `self.device` (see `RoutedRunner.routed`)."""
        return torch.from_numpy(out).to(self.device)

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
        return self.routed(x, as_routing(threshold=threshold, route=route or None))[0]

    def __repr__(self) -> str:
        name, nc = type(self).__name__, len(self.names)
        return f"{name}('{self.export_dir}', format={self.format}, imgsz={self.imgsz}, nc={nc})"


def load_export(path: str | Path, device: str | torch.device = "cpu", threads: int = 0) -> ExportedDynamicModel:
    """Load a dydet export directory (ONNX or OpenVINO), with one-line errors that say what is wrong.

    Args:
        path (str | Path): The export directory (the one `export_onnx` or `export_openvino` wrote).
        device (str | torch.device): 'cpu', or a CUDA device for an ONNX export when onnxruntime-gpu is installed.
        threads (int): Intra-op threads per graph; 0 lets the runtime choose.

    Returns:
        (ExportedDynamicModel): The runtime model.

    Raises:
        FileNotFoundError: A missing directory, metadata file or graph file.
        InvalidExportError: A corrupt graph, metadata of another kind, version or format, or graphs whose input/output
            names do not match the metadata.
        ImportError: The export's runtime is not installed (the message names the pip extra).
    """
    return ExportedDynamicModel(path, device=device, threads=threads)


__all__ = ["BACKENDS", "ExportedDynamicModel", "GraphSession", "backend", "default_device", "load_export"]
