"""`dydet val model=<export folder>` validates an ONNX or OpenVINO export like the `.pt` it came from."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from dydet.models.yolo.model import DynamicYOLO
from dydet.nn.backends.format import read_metadata

ARGS = dict(imgsz=64, batch=4, device="cpu", plots=False, workers=0, rect=False)
KEYS = [f"metrics/mAP50-95({s})" for s in "BEHR"]


@pytest.fixture(scope="module")
def onnx_dir(full_run, tmp_path_factory) -> Path:
    final = Path(full_run[0].ckpt_path)
    return DynamicYOLO(final).export(format="onnx", imgsz=64, project=str(tmp_path_factory.mktemp("x")), name="onnx")


@pytest.fixture(scope="module")
def pt_metrics(full_run, tiny_data, tmp_path_factory):
    project = str(tmp_path_factory.mktemp("pt"))
    return DynamicYOLO(Path(full_run[0].ckpt_path)).val(data=str(tiny_data), project=project, name="pt", **ARGS)


def assert_val_matches_the_pt(export_dir: Path, pt, tiny_data: Path, tmp_path: Path) -> None:
    """Validate `export_dir` routed (B), per route (E)/(H) and at the router's split (R): as the `.pt` within 0.02."""
    ex = DynamicYOLO(export_dir).val(data=str(tiny_data), project=str(tmp_path), name="export", **ARGS)
    assert ex.routing_text == pt.routing_text and ex.scores == pytest.approx(pt.scores, abs=1e-3)
    for key in KEYS:
        assert ex.results_dict[key] == pytest.approx(pt.results_dict[key], abs=0.02), key
    assert ex.fitness == pytest.approx(ex.box.fitness())
    forced = DynamicYOLO(export_dir).val(data=str(tiny_data), route="easy", project=str(tmp_path), name="e", **ARGS)
    assert forced.results_dict[KEYS[0]] == pytest.approx(forced.results_dict[KEYS[1]])


def test_val_of_an_onnx_export_matches_the_pt(pt_metrics, tiny_data, onnx_dir, tmp_path):
    assert_val_matches_the_pt(onnx_dir, pt_metrics, tiny_data, tmp_path)


# not pytest.importorskip: a plain `import openvino` would start OpenVINO's telemetry in the test process
@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino is not installed")
def test_val_of_an_openvino_export_matches_the_pt(full_run, pt_metrics, tiny_data, tmp_path):
    final = Path(full_run[0].ckpt_path)
    ov_dir = DynamicYOLO(final).export(format="openvino", imgsz=64, project=str(tmp_path), name="openvino")
    assert read_metadata(Path(ov_dir))["format"] == "openvino"
    assert_val_matches_the_pt(Path(ov_dir), pt_metrics, tiny_data, tmp_path)


def test_cli_val_of_an_export_folder(tiny_data, onnx_dir, tmp_path):
    dydet = str(Path(sys.executable).with_name("dydet"))
    argv = [dydet, "val", f"model={onnx_dir}", f"data={tiny_data}", "imgsz=64", f"project={tmp_path}", "plots=False"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    log = out.stdout + out.stderr
    assert "easy route" in log and "hard route" in log and "routed (" in log
