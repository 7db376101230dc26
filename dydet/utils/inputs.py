"""Checks of what a run reads, before any work starts or any run folder exists: sizes, data, sources, extras.

Each check raises a one-line `ArgumentError` / `MissingFileError` (dydet's errors: also a `ValueError` /
`FileNotFoundError`) that names the value or file and the fix. None of
them reaches the network: a URL is refused unless the user opted in by setting ``YOLO_OFFLINE=0`` (dydet sets it to 1
by default), and then it is fetched by dydet with a timeout of a few seconds without progress (`URL_TIMEOUT_S`) and a
total deadline (`URL_DEADLINE_S`).
"""

from __future__ import annotations

import contextlib
import http.client
import importlib
import os
import shutil
import socket
import tempfile
import threading
import urllib.parse
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

from dydet.data.checks import check_detection_dataset
from dydet.utils.errors import ArgumentError, DependencyError, MissingFileError
from dydet.utils.files import ARCHIVE_SUFFIXES

URL_TIMEOUT_S = 5.0  # without progress
URL_DEADLINE_S = 60.0  # in all
URL_SCHEMES = ("http://", "https://", "ftp://", "rtsp://", "rtmp://", "tcp://", "ul://")
STREAM_SCHEMES = ("rtsp://", "rtmp://", "tcp://")


# ------------------------------------------------------------------------------------------------------------ network
def network_allowed() -> bool:
    """Return whether the user opted in to network access (``YOLO_OFFLINE`` set to a false value)."""
    return os.environ.get("YOLO_OFFLINE", "1").strip().lower() in {"0", "false", "no", "off"}


def is_url(value: Any) -> bool:
    """Return whether `value` is a URL string."""
    return isinstance(value, (str, Path)) and str(value).strip().lower().startswith(URL_SCHEMES)


def fetch_url(url: str, timeout: float = URL_TIMEOUT_S, deadline: float = URL_DEADLINE_S) -> Path:
    """Download `url` into a temporary folder, giving up after `timeout` s without progress or `deadline` s in all.

    Only called when the user opted in to the network (`network_allowed`). A per-read timeout alone never ends a
    server that sends a byte now and then: at the deadline a timer shuts the connection's socket, which ends any read.

    Args:
        url (str): An http(s)/ftp URL of one file.
        timeout (float): Seconds to wait for the connection and for each read.
        deadline (float): Seconds the whole download may take.

    Returns:
        (Path): The downloaded file.
    """
    name = Path(urllib.parse.urlsplit(url).path).name or "download"
    folder = Path(tempfile.mkdtemp(prefix="dydet-url-"))
    out = folder / name
    sockets: list[socket.socket] = []
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(deadline, expire)
    timer.daemon = True
    timer.start()
    try:
        opener = urllib.request.build_opener(*_handlers(sockets))
        with opener.open(url, timeout=timeout) as response, open(out, "wb") as f:
            while not expired.is_set() and (chunk := response.read1(1 << 16)):
                f.write(chunk)
        if expired.is_set():
            raise TimeoutError(f"not finished after {deadline:g} s")
    except (OSError, ValueError, http.client.HTTPException) as e:  # URLError, timeouts and HTTP errors: OSErrors
        shutil.rmtree(folder, ignore_errors=True)
        why = (
            f"not finished after {deadline:g} s" if expired.is_set() else " ".join(str(getattr(e, "reason", e)).split())
        )
        raise ArgumentError(
            f"could not download '{url}' within {deadline:g} s ({why}); download it yourself and pass the local path"
        ) from e
    finally:
        timer.cancel()
    return out


def _handlers(sockets: list[socket.socket]) -> tuple[urllib.request.BaseHandler, urllib.request.BaseHandler]:
    """HTTP and HTTPS handlers whose connections record their sockets in `sockets` (for `fetch_url`'s deadline)."""

    class Connection(http.client.HTTPConnection):
        def connect(self):
            super().connect()
            sockets.append(self.sock)

    class SecureConnection(http.client.HTTPSConnection):
        def connect(self):
            super().connect()
            sockets.append(self.sock)

    class Handler(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(Connection, req)

    class SecureHandler(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(SecureConnection, req, context=self._context)

    return Handler(), SecureHandler()


def refuse_url(what: str, url: str) -> ArgumentError:
    """Return the error for a URL given while offline."""
    return ArgumentError(
        f"{what}='{url}' is a URL and dydet works offline: download it first (e.g. curl -L -o FILE '{url}') and pass "
        f"the local path, or set YOLO_OFFLINE=0 to let dydet fetch it (giving up after {URL_DEADLINE_S:g} s)"
    )


# ---------------------------------------------------------------------------------------------------------- arguments
def check_imgsz(imgsz: Any, name: str = "imgsz") -> None:
    """Refuse an image size that is not a positive int (or a list of them) up to the cap; None means the default.

    The cap (`limits: imgsz` in `dydet/cfg/default.yaml`) stops a typo from allocating tens of gigabytes.
    """
    from dydet.cfg import max_imgsz

    values = imgsz if isinstance(imgsz, (list, tuple)) else [imgsz]
    if imgsz is None:
        return
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in values):
        raise ArgumentError(f"{name}={imgsz!r} is invalid: it must be a positive image size in pixels, e.g. {name}=640")
    if max(values) > (cap := max_imgsz()):
        raise ArgumentError(f"{name}={imgsz!r} is too large: image sides go from 1 to {cap} pixels, e.g. {name}=640")


def check_batch(batch: Any, mode: str) -> None:
    """Refuse a batch size that Ultralytics would silently replace; train also allows AutoBatch (-1, or 0 < b < 1)."""
    if batch is None:
        return
    ok = isinstance(batch, int) and not isinstance(batch, bool) and batch >= 1
    if mode == "train":
        ok = ok or batch == -1 or (isinstance(batch, float) and 0 < batch < 1)
    if not ok:
        auto = " (or -1 for AutoBatch on a GPU)" if mode == "train" else ""
        raise ArgumentError(f"batch={batch!r} is invalid: it must be a positive number of images, e.g. batch=16{auto}")


def check_run_args(mode: str, kwargs: dict[str, Any]) -> None:
    """Check the sizes of a train/val/predict/benchmark call (`imgsz`, `batch`)."""
    check_imgsz(kwargs.get("imgsz"))
    check_batch(kwargs.get("batch"), mode)


# --------------------------------------------------------------------------------------------------------------- data
def check_data(data: Any, mode: str = "train") -> dict[str, Any]:
    """Check a data YAML for train/val/benchmark, offline: no URL, no archive, no download, labels within `nc`.

    Args:
        data (Any): The `data=` argument.
        mode (str): The command, for messages.

    Returns:
        (dict): The resolved data YAML (`dydet.data.checks.check_detection_dataset`).
    """
    if data is None or (isinstance(data, str) and not data.strip()):
        raise ArgumentError(f"'dydet {mode}' needs data=path/to/data.yaml (a YOLO data YAML whose images are on disk)")
    text = str(data).strip()
    if is_url(text) or text.lower().endswith(ARCHIVE_SUFFIXES):
        raise ArgumentError(
            f"data='{text}' is a {'URL' if is_url(text) else 'dataset archive'}: dydet never downloads or extracts "
            "datasets; fetch and unpack it yourself, then pass its data YAML"
        )
    cfg = check_detection_dataset(data)
    if cfg:
        check_label_classes(cfg)
    return cfg


def _label_dirs(split: Path) -> list[Path]:
    """Return the label folder(s) Ultralytics reads for an image folder (`.../images/x` -> `.../labels/x`)."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    text = str(split) + os.sep
    return [Path(sb.join(text.rsplit(sa, 1)))] if sa in text else [split]


def check_label_classes(cfg: dict[str, Any]) -> None:
    """Refuse labels whose class id is not below the data YAML's class count (Ultralytics drops those images)."""
    nc = int(cfg.get("nc") or len(cfg.get("names") or {}))
    for split in ("train", "val"):
        entries = cfg.get(split) or []
        for entry in entries if isinstance(entries, list) else [entries]:
            path = Path(entry)
            if not path.is_dir():
                continue
            for folder in _label_dirs(path):
                if not folder.is_dir():
                    continue
                for label in folder.rglob("*.txt"):
                    try:
                        lines = label.read_text(errors="replace").splitlines()
                    except OSError:
                        continue
                    for line in lines:
                        first = line.split(maxsplit=1)[0] if line.strip() else ""
                        if first.isdigit() and int(first) >= nc:
                            raise ArgumentError(
                                f"data YAML '{cfg.get('yaml_file', '')}': label '{label}' uses class {first} but the "
                                f"YAML defines {nc} classes (0..{nc - 1}); fix 'names:'/'nc:' or the labels"
                            )


# ------------------------------------------------------------------------------------------------------------ sources
def check_source(source: Any) -> Any:
    """Check a predict `source` before a predictor (and its run folder) exists; fetch an opted-in URL.

    Local paths must exist and hold something readable: a folder or glob with images/videos, or one non-empty image
    that decodes. URLs are refused offline (see the module doc); other sources (arrays, tensors, webcam ids, lists)
    pass unchanged.

    Args:
        source (Any): The `source=` argument.

    Returns:
        (Any): The source to use (a downloaded URL becomes its local file).
    """
    if source is None:
        raise ArgumentError("predict needs source= (an image, folder, glob or video), e.g. source=path/to/img.jpg")
    if not isinstance(source, (str, Path)):
        return source
    text = str(source).strip()
    if is_url(text):
        if not network_allowed():
            raise refuse_url("source", text)
        if text.lower().startswith(STREAM_SCHEMES):
            return text  # a live stream the user explicitly allowed: read by Ultralytics
        return str(fetch_url(text))
    if text.isnumeric() or text.endswith(".streams") or text == "screen":
        return source  # webcam, stream list, screenshot
    from ultralytics.data.utils import IMG_FORMATS, VID_FORMATS

    formats = IMG_FORMATS | VID_FORMATS
    path = Path(text).expanduser()
    if any(c in text for c in "*?["):
        matches = (
            [p for p in Path().glob(text) if p.suffix[1:].lower() in formats]
            if not path.is_absolute()
            else [
                p for p in Path(path.anchor).glob(str(path.relative_to(path.anchor))) if p.suffix[1:].lower() in formats
            ]
        )
        if not matches:
            raise MissingFileError(f"source='{text}' matches no image or video: check the pattern")
        return source
    if not path.exists():
        raise MissingFileError(f"source '{text}' not found: pass an existing image, folder, glob or video")
    if path.is_dir():
        if not any(p.suffix[1:].lower() in formats for p in path.iterdir() if p.is_file()):
            raise MissingFileError(f"source folder '{text}' holds no image or video: add some or pass another folder")
        return source
    if path.stat().st_size == 0:
        raise ArgumentError(f"source '{text}' is an empty file (0 bytes): pass a valid image or video")
    if path.suffix[1:].lower() in IMG_FORMATS:
        import cv2
        import numpy as np

        if cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED) is None:
            from PIL import Image

            try:  # formats cv2 cannot read (e.g. HEIC, some TIFF) but Ultralytics can through PIL
                with Image.open(path) as im:
                    im.verify()
            except Exception as e:  # Ultralytics' patched Image.open may also fail on a missing HEIF plugin
                raise ArgumentError(f"source '{text}' is not a readable image: pass a valid image file") from e
    elif path.suffix[1:].lower() not in VID_FORMATS and path.suffix.lower() not in {".txt", ".csv"}:
        raise ArgumentError(f"source '{text}' is not an image or video ({path.suffix or 'no suffix'}): pass one")
    return source


# -------------------------------------------------------------------------------------------------------------- extras
def require_package(module: str, feature: str, extra: str) -> ModuleType:
    """Import an optional package a feature needs, or raise a `DependencyError` saying how to install it.

    Args:
        module (str): The module to import, e.g. 'onnx'.
        feature (str): What needs it, for the message, e.g. 'ONNX export'.
        extra (str): The dydet extra that installs it, e.g. 'export' (``pip install 'dydet[export]'``).

    Returns:
        (ModuleType): The imported module.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise DependencyError(
            f"{feature} needs the '{module}' package, which is not installed: pip install 'dydet[{extra}]'"
        ) from e


def require_export_extra() -> None:
    """Refuse ONNX export with a one-line install hint when the `export` extra is missing."""
    for module in ("onnx", "onnxruntime"):
        require_package(module, "ONNX export", "export")
