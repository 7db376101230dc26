"""The export folder of a split dynamic model: which files it holds, its `metadata.json` schema, and their checks.

An export folder holds three graphs and one metadata file, in one runtime's file format:

    router  images -> score (B,) and the B1 features that the two heads read
    easy    B1 features -> y (B, 4 + nc, A): H1, the easy route's neck and Detect head
    hard    images + B1 features -> y (B, 4 + nc, A): CBLinear taps, B2 with CBFuse, H2
    metadata.json   kind/version/format, class names, image size, strides, default threshold, calibration, and every
                    graph's file and input/output names

`format` is 'onnx' (`router.onnx`, ...) or 'openvino' (OpenVINO IR, `router.xml` + `router.bin`, ...); metadata
written before the field existed is ONNX. The `kind` string predates OpenVINO and names the split layout, whatever
the format.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from dydet.utils.errors import CheckpointError, DependencyError, MissingFileError

EXPORT_KIND = "dydet-onnx-split"
EXPORT_VERSION = 1
METADATA_FILE = "metadata.json"
GRAPHS = ("router", "easy", "hard")
IMAGES = "images"
SCORE = "score"
OUTPUT = "y"
# format -> the files one graph is made of, by suffix; the first is the one the metadata names
FORMAT_SUFFIXES = {"onnx": (".onnx",), "openvino": (".xml", ".bin")}
FORMAT_LABELS = {"onnx": "ONNX", "openvino": "OpenVINO"}
REQUIRED_KEYS = ("names", "imgsz", "strides", "graphs", "threshold")


class InvalidExportError(CheckpointError):
    """A dydet export directory that is incomplete, corrupt, or does not match its metadata."""


class MissingRuntimeError(DependencyError, ValueError):
    """The package an export format needs is not installed (a `DependencyError`, also a ValueError as before)."""


def export_hint(fmt: str = "onnx", folder: str | Path | None = None) -> str:
    """Return the fix for a broken export: the command that writes a new one in the same format.

    An export written where `dydet export` puts it by default (`<stem>_<format>` beside `<stem>.pt`) names its real
    checkpoint; any other folder names the checkpoint generically.
    """
    source = None
    if folder is not None and Path(folder).name.endswith(f"_{fmt}"):
        stem = Path(folder).name[: -len(fmt) - 1]
        source = Path(folder).with_name(f"{stem}.pt") if stem and not stem.endswith("_int8") else None
    model = shlex.quote(f"model={source.resolve()}") if source is not None and source.is_file() else None
    return f"re-export it with 'dydet export {model or 'model=path/to/final.pt'} format={fmt}'"


def is_export_dir(path: str | Path) -> bool:
    """Return True if `path` is a directory holding a dydet export's metadata file (cheap check, no validation)."""
    return Path(path).is_dir() and (Path(path) / METADATA_FILE).is_file()


def export_format(meta: dict[str, Any]) -> str:
    """Return the export's file format ('onnx' when the metadata predates the `format` field)."""
    return str(meta.get("format", "onnx"))


def graph_files(export_dir: str | Path, meta: dict[str, Any], graph: str) -> list[Path]:
    """Return the files one graph is made of (e.g. `hard.xml` and `hard.bin` for OpenVINO), the named one first."""
    file = Path(export_dir) / str(meta["graphs"][graph]["file"])
    return [file, *(file.with_suffix(s) for s in FORMAT_SUFFIXES[export_format(meta)][1:])]


def read_metadata(export_dir: str | Path) -> dict[str, Any]:
    """Read and check an export's `metadata.json`: present, JSON, of dydet's kind, version and a known format.

    Args:
        export_dir (str | Path): The export directory.

    Returns:
        (dict): The metadata, with integer class-name keys and `format` filled in.

    Raises:
        FileNotFoundError: If the directory or its metadata file is missing.
        InvalidExportError: If the metadata is unreadable, of another kind, version or format, or lacks fields.
    """
    export_dir = Path(export_dir)
    fix = export_hint(folder=export_dir)
    if not export_dir.is_dir():
        raise MissingFileError(f"export directory '{export_dir}' not found: {fix}")
    file = export_dir / METADATA_FILE
    if not file.is_file():
        raise MissingFileError(f"'{export_dir}' is not a dydet export: {METADATA_FILE} is missing; {fix}")
    try:
        meta = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidExportError(f"'{file}' is not valid JSON ({e}); {fix}") from None
    if not isinstance(meta, dict) or meta.get("kind") != EXPORT_KIND:
        kind = meta.get("kind") if isinstance(meta, dict) else type(meta).__name__
        raise InvalidExportError(f"'{file}' describes a {kind!r} export, not a {EXPORT_KIND!r} one; {fix}")
    fmt = export_format(meta)
    if fmt not in FORMAT_SUFFIXES:
        raise InvalidExportError(f"'{file}' is in format {fmt!r}; this dydet reads {', '.join(FORMAT_SUFFIXES)}: {fix}")
    hint = export_hint(fmt, export_dir)
    if meta.get("version") != EXPORT_VERSION:
        raise InvalidExportError(
            f"'{file}' is export format version {meta.get('version')!r}; this dydet reads version {EXPORT_VERSION} "
            f"only: {hint}"
        )
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise InvalidExportError(f"'{file}' lacks {', '.join(missing)}; {hint}")
    problems = _graph_problems(meta["graphs"]) or _value_problems(meta, export_dir)
    if problems:
        raise InvalidExportError(f"'{file}' is inconsistent: {'; '.join(problems)}; {hint}")
    meta["names"] = {int(k): v for k, v in meta["names"].items()}
    meta["format"] = fmt
    return meta


def _value_problems(meta: dict[str, Any], export_dir: Path) -> list[str]:
    """Return what is wrong with the metadata's values: class names, image size, strides, threshold, graph paths."""
    from dydet.cfg import max_imgsz

    problems = []
    names = meta["names"]
    if not names or not isinstance(names, dict) or not all(str(k).isdigit() for k in names):
        problems.append("'names' must be a non-empty table of class index -> name")
    imgsz, cap = meta["imgsz"], max_imgsz()
    if not (
        isinstance(imgsz, list)
        and len(imgsz) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= cap for v in imgsz)
    ):
        problems.append(f"'imgsz' must be [height, width], each 1 to {cap}, not {imgsz!r}")
    strides = meta["strides"]
    if not (isinstance(strides, list) and strides and all(isinstance(v, int) and 0 < v <= cap for v in strides)):
        problems.append(f"'strides' must be a non-empty list of positive integers, not {strides!r}")
    threshold = meta["threshold"]
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
        problems.append(f"'threshold' must be a number, not {threshold!r}")
    root = export_dir.resolve()
    for g in GRAPHS:
        file = meta["graphs"][g]["file"]
        if not isinstance(file, str) or Path(file).is_absolute() or not (root / file).resolve().is_relative_to(root):
            problems.append(f"the {g} graph file {file!r} is not inside the export folder")
    return problems


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


def check_graph_names(file: Path, side: str, names: list[str], graph: dict[str, list[str]], fmt: str) -> None:
    """Raise if a loaded graph's input or output names (`side`) are not the ones the metadata promises.

    Args:
        file (Path): The graph file (for the message).
        side (str): 'inputs' or 'outputs'.
        names (list[str]): The names the loaded graph has, in order.
        graph (dict): The graph's metadata entry.
        fmt (str): The export format (for the fix in the message).

    Raises:
        InvalidExportError: When they differ.
    """
    if names != list(graph[side]):
        raise InvalidExportError(
            f"'{file}' {side} are {names} but {METADATA_FILE} says {list(graph[side])}: the graph does not belong to "
            f"this export; {export_hint(fmt, file.parent)}"
        )


__all__ = [
    "EXPORT_KIND",
    "EXPORT_VERSION",
    "FORMAT_LABELS",
    "FORMAT_SUFFIXES",
    "GRAPHS",
    "IMAGES",
    "METADATA_FILE",
    "OUTPUT",
    "SCORE",
    "InvalidExportError",
    "MissingRuntimeError",
    "check_graph_names",
    "export_format",
    "export_hint",
    "graph_files",
    "is_export_dir",
    "read_metadata",
]
