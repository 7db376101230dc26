"""`dydet val model=<export folder>` validates an ONNX export like the `.pt` it came from."""

import subprocess
import sys
from pathlib import Path

import pytest

from dydet.models.yolo.model import DynamicYOLO

ARGS = dict(imgsz=64, batch=4, device="cpu", plots=False, workers=0, rect=False)
KEYS = [f"metrics/mAP50-95({s})" for s in "BEHR"]


@pytest.fixture(scope="module")
def onnx_dir(full_run, tmp_path_factory) -> Path:
    final = Path(full_run[0].ckpt_path)
    return DynamicYOLO(final).export(format="onnx", imgsz=64, project=str(tmp_path_factory.mktemp("x")), name="onnx")


def test_val_of_an_onnx_export_matches_the_pt(full_run, tiny_data, onnx_dir, tmp_path):
    final = Path(full_run[0].ckpt_path)
    pt = DynamicYOLO(final).val(data=str(tiny_data), project=str(tmp_path), name="pt", **ARGS)
    ex = DynamicYOLO(onnx_dir).val(data=str(tiny_data), project=str(tmp_path), name="onnx", **ARGS)
    assert ex.routing_text == pt.routing_text and ex.scores == pytest.approx(pt.scores, abs=1e-3)
    for key in KEYS:
        assert ex.results_dict[key] == pytest.approx(pt.results_dict[key], abs=0.02), key
    assert ex.fitness == pytest.approx(ex.box.fitness())
    forced = DynamicYOLO(onnx_dir).val(data=str(tiny_data), route="easy", project=str(tmp_path), name="e", **ARGS)
    assert forced.results_dict[KEYS[0]] == pytest.approx(forced.results_dict[KEYS[1]])


def test_cli_val_of_an_export_folder(tiny_data, onnx_dir, tmp_path):
    dydet = str(Path(sys.executable).with_name("dydet"))
    argv = [dydet, "val", f"model={onnx_dir}", f"data={tiny_data}", "imgsz=64", f"project={tmp_path}", "plots=False"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    log = out.stdout + out.stderr
    assert "easy route" in log and "hard route" in log and "routed (" in log
