"""Shared pytest set-up: a temporary home for the whole session, then dydet's offline set-up, as the CLI makes it.

Before anything imports Ultralytics, DYDET_HOME (dydet's dataset cache) and YOLO_CONFIG_DIR (Ultralytics' settings
and fonts) point into a fresh temporary folder, so the tests never read or write the user's ~/.cache/dydet or
Ultralytics settings; then `setup_offline()` sets YOLO_OFFLINE / YOLO_AUTOINSTALL and the local fonts.
tests/test_offline.py checks the set-up itself in fresh interpreters with their own homes.
"""

import logging
import os
import tempfile
from pathlib import Path

SESSION_HOME = Path(tempfile.mkdtemp(prefix="dydet-tests-"))
os.environ["DYDET_HOME"] = str(SESSION_HOME / "dydet")
os.environ["YOLO_CONFIG_DIR"] = str(SESSION_HOME / "ultralytics")
os.environ.pop("DYDET_DATASETS_DIR", None)

from dydet.utils.offline import setup_offline  # noqa: E402

setup_offline()

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from dydet import DynamicYOLO  # noqa: E402
from dydet.data.synthetic import make_dataset  # noqa: E402

TINY_TRAIN = {"epochs": 1, "imgsz": 64, "batch": 8, "workers": 0, "device": "cpu", "plots": False}


def cli_end_to_end(model: str, data: Path, project: Path, baselines: str, *extra: str) -> dict[str, str]:
    """Through the `dydet` command: train (stage all), val, predict, ONNX export, predict from the export, benchmark
    against `baselines`; `extra` arguments go to val, predict and export (e.g. `nms=False`). Returns each mode's log."""
    import subprocess
    import sys

    def dydet(*args: str) -> str:
        out = subprocess.run(
            [str(Path(sys.executable).with_name("dydet")), *args], capture_output=True, text=True, timeout=1800
        )
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout + out.stderr

    common = ["imgsz=64", "batch=8", f"project={project}"]
    logs = {"train": dydet("train", f"model={model}", f"data={data}", "epochs=2", "workers=0", "name=cli", *common)}
    final = next(project.glob("cli*/weights/final.pt"), None) or next(project.rglob("final.pt"))
    logs["val"] = dydet("val", f"model={final}", f"data={data}", *extra, *common)
    assert "easy route" in logs["val"] and "hard route" in logs["val"]
    source = data.parent / "images" / "val"
    logs["predict"] = dydet("predict", f"model={final}", f"source={source}", "imgsz=64", *extra, f"project={project}")
    dydet("export", f"model={final}", "format=onnx", *extra, f"project={project}", "name=onnx")
    assert (project / "onnx" / "hard.onnx").is_file()
    logs["predict_export"] = dydet("predict", f"model={project / 'onnx'}", f"source={source}", f"project={project}")
    logs["benchmark"] = dydet("benchmark", f"model={final}", "imgsz=64", f"baselines={baselines}", f"project={project}")
    return logs


def narrow_yaml(name: str, folder: Path, width: float = 0.25, **fields) -> Path:
    """Write a shipped model YAML at a fraction of its width (and other top-level `fields`) into `folder`."""
    import yaml

    from dydet.cfg import MODELS_DIR

    d = yaml.safe_load((MODELS_DIR / name).read_text())
    d.update(width_multiple=width, **fields)
    path = folder / f"{Path(name).stem}-w{width}.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


def light_yaml(folder: Path) -> Path:
    """dy-faster-rcnn.yaml with CPU-sized RPN / RoI settings (100 proposals), saved as dy-faster-rcnn-r18.yaml."""
    import yaml

    from dydet.cfg import MODELS_DIR

    d = yaml.safe_load((MODELS_DIR / "dy-faster-rcnn.yaml").read_text())
    d["detector"] = {
        "rpn_pre_nms_top_n_train": 200,
        "rpn_post_nms_top_n_train": 200,
        "rpn_pre_nms_top_n_test": 100,
        "rpn_post_nms_top_n_test": 100,
        "box_batch_size_per_image": 64,
    }
    path = folder / "dy-faster-rcnn-r18.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


class LogCapture(logging.Handler):
    """Collects the messages Ultralytics' LOGGER emits (dydet logs through it)."""

    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())

    def __enter__(self):
        from ultralytics.utils import LOGGER

        LOGGER.addHandler(self)
        return self.lines

    def __exit__(self, *exc):
        from ultralytics.utils import LOGGER

        LOGGER.removeHandler(self)


@pytest.fixture
def captured():
    with LogCapture() as lines:
        yield lines


@pytest.fixture
def tiny_train() -> dict:
    return dict(TINY_TRAIN)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    return make_dataset("tiny", root=tmp_path_factory.mktemp("datasets"), verbose=False)


@pytest.fixture(scope="session")
def full_run(tiny_data, tmp_path_factory):
    """Stage 1 + stage 2 + calibration on the tiny dataset through the Python API."""
    project = tmp_path_factory.mktemp("runs")
    model = DynamicYOLO("dy-yolo11n.yaml")
    metrics = model.train(data=str(tiny_data), project=str(project), name="full", stage2_epochs=1, **TINY_TRAIN)
    return model, metrics, project


def pytest_sessionfinish(session, exitstatus):
    """Remove the session's temporary home."""
    import shutil

    shutil.rmtree(SESSION_HOME, ignore_errors=True)
