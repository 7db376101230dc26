"""onnxruntime sessions for the split-graph runtime (`dydet.nn.backends.runtime`): devices, providers, threads.

An `onnxruntime.InferenceSession` already has the runtime's session interface, `run(output_names, feeds)`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from dydet.nn.backends.format import InvalidExportError, check_graph_names, export_hint
from dydet.utils.errors import ArgumentError, MissingFileError

FORMAT = "onnx"


def resolve_device(device: str | torch.device) -> torch.device:
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

    fix = export_hint(FORMAT, file.parent)
    if not file.is_file():
        raise MissingFileError(f"ONNX export is incomplete: '{file}' is missing; {fix}")
    try:
        session = ort.InferenceSession(str(file), options, providers=providers)
    except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf/InvalidGraph types
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InvalidExportError(f"'{file}' is not a loadable ONNX graph ({reason}); {fix}") from None
    for side, got in (("inputs", session.get_inputs()), ("outputs", session.get_outputs())):
        check_graph_names(file, side, [t.name for t in got], graph, FORMAT)
    return session


def session_opener(
    device: torch.device, threads: int = 0, metadata: dict | None = None
) -> Callable[[Path, dict], object]:
    """Return a function that opens one graph file as an onnxruntime session on `device`.

    Args:
        device (torch.device): CPU, or CUDA when onnxruntime-gpu is installed (checked here, once).
        threads (int): Intra-op threads per graph; 0 lets onnxruntime choose (one per physical core).
        metadata (dict, optional): The export's metadata (unused: the graphs' precision is fixed at export).

    Returns:
        (Callable[[Path, dict], onnxruntime.InferenceSession]): `open(file, graph_metadata)`.
    """
    providers, options = _providers(device), _session_options(threads)
    return lambda file, graph: _session(file, providers, graph, options)


__all__ = ["FORMAT", "default_device", "resolve_device", "session_opener"]
