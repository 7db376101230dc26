"""OpenVINO compiled models for the split-graph runtime (`dydet.nn.backends.runtime`), CPU only.

`import_openvino` imports OpenVINO without its usage telemetry: `import openvino` imports its model converter,
which sends a Google Analytics event and writes a client id under `~/intel` unless the user opted out. dydet
reaches no network unless asked, so the import runs with the telemetry package hidden, and the converter falls back
to its built-in no-op stub. Graphs are read from IR files by `openvino.Core`, which sends nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dydet.nn.backends.format import InvalidExportError, MissingRuntimeError, check_graph_names, export_hint
from dydet.utils.errors import ArgumentError, MissingFileError

FORMAT = "openvino"
PIP_HINT = "pip install 'dydet[openvino]'"
TELEMETRY_MODULE = "openvino_telemetry"


def import_openvino() -> Any:
    """Import and return the `openvino` module without its telemetry, with a one-line error when it is missing.

    Returns:
        (module): `openvino`.

    Raises:
        MissingRuntimeError: When OpenVINO is not installed (an ImportError whose message names the pip extra).
    """
    if sys.modules.get("openvino") is not None:
        return sys.modules["openvino"]
    hidden = TELEMETRY_MODULE not in sys.modules
    if hidden:
        sys.modules[TELEMETRY_MODULE] = None  # `import openvino_telemetry` raises ImportError: the stub is used
    try:
        import openvino
    except ImportError:
        raise MissingRuntimeError(f"format=openvino needs the 'openvino' package: {PIP_HINT}") from None
    finally:
        if hidden:
            del sys.modules[TELEMETRY_MODULE]
    return openvino


@cache
def core() -> Any:
    """Return the process's `openvino.Core` (one is enough; creating it loads the device plugins)."""
    return import_openvino().Core()


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Return the CPU device, refusing any other: OpenVINO exports run on the CPU here."""
    if device in (None, "") or torch.device(f"cuda:{device}" if str(device).isdigit() else device).type == "cpu":
        return torch.device("cpu")
    raise ArgumentError(f"device={str(device)!r} is not available to an OpenVINO export: use device=cpu")


default_device = resolve_device


class OpenVinoSession:
    """One compiled OpenVINO graph behind the runtime's session interface, `run(output_names, feeds)`.

    Attributes:
        compiled (openvino.CompiledModel): The compiled graph.
        request (openvino.InferRequest): The request every call reuses (outputs are copied out of it).
    """

    def __init__(self, compiled: Any):
        """Wrap a compiled model."""
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self._outputs = {name: port for port in compiled.outputs for name in port.get_names()}

    def run(self, output_names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the graph on named inputs and return the named outputs as arrays (copies, safe to keep)."""
        result = self.request.infer(feeds)
        return [np.asarray(result[self._outputs[name]]) for name in output_names]


def _port_names(ports: list, expected: list[str]) -> list[str]:
    """Return each port's name, preferring the one the metadata expects when a port has several."""
    names = []
    for port, want in zip(ports, [*expected, *[None] * len(ports)]):
        all_names = port.get_names()
        names.append(want if want in all_names else port.get_any_name())
    return names


def _session(file: Path, graph: dict[str, list[str]], config: dict[str, Any]) -> OpenVinoSession:
    """Read and compile one IR graph and check that its input/output names are the ones the metadata promises."""
    fix = export_hint(FORMAT, file.parent)
    for f in (file, file.with_suffix(".bin")):
        if not f.is_file():
            raise MissingFileError(f"OpenVINO export is incomplete: '{f}' is missing; {fix}")
    try:
        compiled = core().compile_model(core().read_model(str(file)), "CPU", config)
    except Exception as e:  # OpenVINO raises RuntimeError with multi-line C++ context
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InvalidExportError(f"'{file}' is not a loadable OpenVINO graph ({reason}); {fix}") from None
    for side, ports in (("inputs", compiled.inputs), ("outputs", compiled.outputs)):
        check_graph_names(file, side, _port_names(ports, graph[side]), graph, FORMAT)
    return OpenVinoSession(compiled)


def session_opener(
    device: torch.device, threads: int = 0, metadata: dict | None = None, precision: str | None = None
) -> Callable[[Path, dict], OpenVinoSession]:
    """Return a function that compiles one IR graph for the CPU.

    Latency mode (one stream: the graphs run one after another on one batch). The inference precision is the
    export's `inference_precision`: 'f32' (the default, so that results match PyTorch's fp32 even on CPUs where
    OpenVINO would pick bf16, those with AVX-512 bf16 or AMX), or 'auto' (OpenVINO's own choice; `half=True` exports).

    Args:
        device (torch.device): Must be the CPU.
        threads (int): Inference threads per graph; 0 lets OpenVINO choose.
        metadata (dict, optional): The export's metadata (its `inference_precision`; 'f32' when absent).
        precision (str, optional): Overrides it: 'f32', 'bf16' (where the CPU has it) or 'auto'.

    Returns:
        (Callable[[Path, dict], OpenVinoSession]): `open(file, graph_metadata)`.
    """
    resolve_device(device)
    precision = precision or (metadata or {}).get("inference_precision", "f32")
    config = {"PERFORMANCE_HINT": "LATENCY"}
    if precision != "auto":
        config["INFERENCE_PRECISION_HINT"] = precision
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return lambda file, graph: _session(file, graph, config)


__all__ = [
    "FORMAT",
    "PIP_HINT",
    "OpenVinoSession",
    "default_device",
    "import_openvino",
    "resolve_device",
    "session_opener",
]
