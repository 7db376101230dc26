"""Bad inputs and the network, through the `dydet` command (in-process `entrypoint`): one line, exit 1, no run folder,
no download, nothing that hangs."""

import socket
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

import dydet  # noqa: F401  (offline settings before ultralytics)
from dydet.cli import entrypoint
from dydet.nn.checkpoint import save_checkpoint
from dydet.nn.tasks import DynamicDetectionModel


# ----------------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    from dydet.data.synthetic import make_dataset

    return make_dataset("tiny", root=tmp_path_factory.mktemp("datasets"), verbose=False)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_data) -> Path:
    """An untrained dydet checkpoint that knows its data (enough for val/predict/benchmark to start)."""
    model = DynamicDetectionModel("dy-yolo11n.yaml", nc=6, verbose=False)
    path = tmp_path_factory.mktemp("ckpt") / "dy.pt"
    return save_checkpoint({"epoch": -1, "model": model, "train_args": {"data": str(tiny_data), "imgsz": 64}}, path)


@pytest.fixture
def image(tmp_path) -> Path:
    import cv2
    import numpy as np

    path = tmp_path / "img.jpg"
    cv2.imwrite(str(path), np.full((64, 64, 3), 127, np.uint8))
    return path


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts connections and never answers; counts them."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted, self.held = 0, []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.held.append(conn)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def close(self):
        for c in self.held:
            c.close()
        self.sock.close()


@pytest.fixture
def server():
    s = SilentServer()
    yield s
    s.close()


def run_cli(capsys, *argv: str) -> str:
    """Run `dydet argv`, expect exit code 1 and exactly one stderr line; return it."""
    with pytest.raises(SystemExit) as e:
        entrypoint(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 1, err
    assert len(err) == 1, err
    assert "Traceback" not in err[0] and "yolo26n" not in err[0]
    return err[0]


def no_runs(project: Path) -> bool:
    return not project.exists() or not any(project.iterdir())


# ------------------------------------------------------------------------------------------------------ sizes (CLI)
@pytest.mark.parametrize("mode", ["train", "val", "predict", "benchmark"])
@pytest.mark.parametrize(("key", "value"), [("imgsz", "0"), ("batch", "0"), ("imgsz", "-32")])
def test_zero_sizes_are_refused(capsys, tmp_path, mode, key, value, checkpoint, tiny_data, image):
    project = tmp_path / "runs"
    args = {"train": [f"data={tiny_data}"], "val": [f"model={checkpoint}"], "benchmark": [f"model={checkpoint}"]}
    args["predict"] = [f"model={checkpoint}", f"source={image}"]
    line = run_cli(capsys, mode, *args[mode], f"{key}={value}", f"project={project}")
    assert f"{key}={value} is invalid" in line
    assert no_runs(project)


# ------------------------------------------------------------------------------------------------------- data (CLI)
@pytest.mark.parametrize("mode", ["val", "benchmark"])
def test_missing_data_yaml(capsys, tmp_path, mode, checkpoint):
    line = run_cli(capsys, mode, f"model={checkpoint}", f"data={tmp_path / 'nope.yaml'}", f"project={tmp_path / 'r'}")
    assert "nope.yaml' not found" in line
    assert no_runs(tmp_path / "r")


def _yaml(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("mode", ["train", "val"])
def test_nc_smaller_than_label_classes(capsys, tmp_path, mode, tiny_data, checkpoint):
    cfg = yaml.safe_load(tiny_data.read_text())
    small = _yaml(tmp_path / "small.yaml", {**{k: cfg[k] for k in ("path", "train", "val")}, "names": ["a", "b"]})
    model = [] if mode == "train" else [f"model={checkpoint}"]
    line = run_cli(capsys, mode, *model, f"data={small}", f"project={tmp_path / 'r'}")
    assert "uses class" in line and "defines 2 classes" in line
    assert no_runs(tmp_path / "r")


def test_val_never_downloads(capsys, tmp_path, tiny_data, checkpoint, server):
    cfg = yaml.safe_load(tiny_data.read_text())
    missing = {"path": str(tmp_path / "absent"), "train": "images/train", "val": "images/val", "names": cfg["names"]}
    data = _yaml(tmp_path / "dl.yaml", {**missing, "download": server.url("data.zip")})
    line = run_cli(capsys, "val", f"model={checkpoint}", f"data={data}", f"project={tmp_path / 'r'}")
    assert "never downloads" in line
    assert server.accepted == 0 and no_runs(tmp_path / "r")


# --------------------------------------------------------------------------------------------------- network (CLI)
@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "model={ckpt}", "source={url}img.jpg"],
        ["predict", "model={url}model.pt", "source={image}"],
        ["train", "pretrained={url}yolo11n.pt", "data={data}"],
        ["train", "data={url}data.zip"],
        ["val", "model={ckpt}", "data={url}data.zip"],
    ],
    ids=["source", "model", "pretrained", "train-data", "val-data"],
)
def test_urls_are_refused_offline_without_a_connection(capsys, tmp_path, argv, server, checkpoint, image, tiny_data):
    fill = {"ckpt": checkpoint, "url": server.url(""), "image": image, "data": tiny_data}
    line = run_cli(capsys, *(a.format(**fill) for a in argv), f"project={tmp_path / 'r'}")
    assert "URL" in line and ("download" in line or "fetch" in line)
    assert server.accepted == 0 and no_runs(tmp_path / "r")


def test_opted_in_url_times_out_against_a_silent_server(capsys, tmp_path, server, checkpoint, monkeypatch):
    monkeypatch.setenv("YOLO_OFFLINE", "0")
    t0 = time.monotonic()
    line = run_cli(capsys, "predict", f"model={checkpoint}", f"source={server.url('img.jpg')}", f"project={tmp_path}")
    assert time.monotonic() - t0 < 60  # bounded: a few seconds of timeout, not minutes
    assert "could not download" in line and "download it yourself" in line
    assert server.accepted == 1


# ---------------------------------------------------------------------------------------------------- predict sources
@pytest.mark.parametrize("case", ["empty_folder", "missing_file", "zero_byte_jpg", "text_as_jpg", "no_match_glob"])
def test_bad_predict_sources(capsys, tmp_path, case, checkpoint):
    src = tmp_path / "src"
    src.mkdir()
    source = {
        "empty_folder": src,
        "missing_file": src / "nope.jpg",
        "zero_byte_jpg": src / "zero.jpg",
        "text_as_jpg": src / "text.jpg",
        "no_match_glob": src / "*.png",
    }[case]
    if case == "zero_byte_jpg":
        source.write_bytes(b"")
    if case == "text_as_jpg":
        source.write_text("this is not an image\n" * 20)
    line = run_cli(capsys, "predict", f"model={checkpoint}", f"source={source}", f"project={tmp_path / 'r'}")
    assert str(source) in line
    assert no_runs(tmp_path / "r")


# ------------------------------------------------------------------------------------------------------------- export
def test_export_without_the_extra(capsys, tmp_path, checkpoint, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    line = run_cli(capsys, "export", f"model={checkpoint}", f"project={tmp_path}", "name=e")
    assert "pip install 'dydet[export]'" in line
    assert not (tmp_path / "e").exists()


# ------------------------------------------------------------------------------------------------------------- resume
def test_resume_without_a_checkpoint_never_falls_back(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = run_cli(capsys, "train", "resume=True", f"project={tmp_path / 'r'}")
    assert "resume=True needs the checkpoint" in line
    assert no_runs(tmp_path / "r") and not (tmp_path / "runs").exists()


def test_checkpoint_errors_are_dydets_own(capsys, tmp_path, image):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00 not a checkpoint " * 50)
    line = run_cli(capsys, "predict", f"model={garbage}", f"source={image}")
    assert "garbage.pt' is not a readable PyTorch checkpoint" in line


# -------------------------------------------------------------------------------------------------------- run folders
def test_failed_run_leaves_no_run_folder(capsys, tmp_path, tiny_data):
    import torch
    from ultralytics.nn.tasks import DetectionModel

    other = tmp_path / "yolo11s.pt"  # a valid detection checkpoint of another scale: fails inside the trainer
    torch.save({"epoch": -1, "model": DetectionModel("yolo11s.yaml", nc=6, verbose=False).half()}, other)
    project = tmp_path / "r"
    line = run_cli(capsys, "train", f"data={tiny_data}", f"pretrained={other}", f"project={project}", "epochs=1")
    assert "same base and scale" in line
    assert no_runs(project)


def test_opt_in_download_has_a_total_deadline(tmp_path):
    """A server that sends one byte a second never trips a per-read timeout; the total deadline ends the download."""
    import http.server
    import threading
    import time

    from dydet.utils.errors import ArgumentError
    from dydet.utils.inputs import fetch_url

    class Drip(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "30")
            self.end_headers()
            for _ in range(30):  # bounded: the server stops by itself
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(1)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ArgumentError, match=r"within 2 s \(not finished after 2 s\)"):
            fetch_url(f"http://127.0.0.1:{server.server_port}/img.jpg", timeout=5, deadline=2)
    finally:
        server.shutdown()
        server.server_close()
