"""int8 export (`quantize=8`): NNCF-quantized OpenVINO split graphs that route with a recomputed calibration."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from dydet.engine.exported import predict_exported
from dydet.engine.quantize import export_precision, split_images
from dydet.models.yolo.model import DynamicYOLO
from dydet.routing import threshold_for_hard_ratio
from dydet.utils.errors import ArgumentError, DependencyError

from .test_export import IMGSZ, tiny_model

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None or importlib.util.find_spec("nncf") is None,
    reason="openvino or nncf is not installed",
)


def yolo_of(model) -> DynamicYOLO:
    yolo = DynamicYOLO("dy-yolo11n.yaml")
    yolo.model = model
    return yolo


@pytest.fixture(scope="module")
def pt(tiny_data):
    """The random test model, calibrated on the fp32 scores of the tiny validation images (as predict sees them)."""
    model = tiny_model()
    scores = [r.score for r in yolo_of(model).predict(split_images(tiny_data), imgsz=IMGSZ, verbose=False)]
    model.calibration = {"scores": sorted(scores), "imgsz": IMGSZ, "n_images": len(scores), "gflops": None}
    model.threshold = threshold_for_hard_ratio(model.calibration, 0.5)
    return model


@pytest.fixture(scope="module")
def int8_dir(pt, tiny_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("int8")
    return yolo_of(pt).export(format="openvino", quantize=8, data=str(tiny_data), imgsz=IMGSZ, project=out, name="q")


def test_int8_export_writes_quantized_graphs(int8_dir, tiny_data):
    meta = json.loads((int8_dir / "metadata.json").read_text())
    assert meta["format"] == "openvino" and meta["quantize"] == 8 and meta["precision"] == "int8"
    for g in ("router", "easy", "hard"):
        assert 'type="FakeQuantize"' in (int8_dir / f"{g}.xml").read_text(), f"{g} graph is not quantized"
    assert meta["quantization"]["float"] == {"router": ["router"], "easy": ["head decoding"], "hard": ["head decoding"]}
    assert meta["quantization"]["images"] == len(split_images(tiny_data))


def test_int8_calibration_holds_the_quantized_routers_predict_scores(pt, int8_dir, tiny_data):
    meta = json.loads((int8_dir / "metadata.json").read_text())
    cal = meta["calibration"]
    results = predict_exported(int8_dir, split_images(tiny_data), verbose=False)
    assert cal["precision"] == "int8" and cal["n_images"] == len(results)
    assert cal["scores"] == pytest.approx(sorted(r.score for r in results), abs=1e-6)
    assert cal["scores"] != pytest.approx(pt.calibration["scores"], abs=1e-6)  # quantizing moved them
    assert {"easy", "hard"} <= set(cal["latency_ms"]) and cal["gflops"]["hard"] > cal["gflops"]["easy"] > 0
    assert meta["threshold"] == pytest.approx(threshold_for_hard_ratio(cal, 0.5))  # the model's own hard ratio


def test_int8_export_predicts_and_routes_with_its_calibration(pt, int8_dir, tiny_data):
    images = split_images(tiny_data)
    results = predict_exported(int8_dir, images, hard_ratio=0.5, conf=0.01, verbose=False)
    assert sum(r.route == "hard" for r in results) == len(images) // 2  # the calibration images themselves
    assert all(isinstance(r.score, float) and r.boxes is not None for r in results)
    expected = yolo_of(pt).predict(images, imgsz=IMGSZ, hard_ratio=0.5, conf=0.01, verbose=False)
    agree = sum(r.route == e.route for r, e in zip(results, expected))  # random weights: a harsh case for int8
    assert agree >= 0.6 * len(images), [(r.route, r.score, e.route, e.score) for r, e in zip(results, expected)]
    assert sum(len(r.boxes) for r in results) > 0
    assert {r.route for r in predict_exported(int8_dir, images, route="easy", verbose=False)} == {"easy"}


def test_export_precision_reads_quantize_and_the_ultralytics_aliases():
    assert export_precision({"quantize": 8}) == 8 and export_precision({"quantize": "int8"}) == 8
    assert export_precision({"int8": True}) == 8 and export_precision({"int8": True, "half": True}) == 8
    assert export_precision({"half": True}) == 16 and export_precision({"quantize": "fp16"}) == 16
    assert export_precision({}) is None and export_precision({"quantize": 32, "int8": True}) is None
    with pytest.raises(ArgumentError, match="quantize='w8a16' is not available"):
        export_precision({"quantize": "w8a16"})


@pytest.mark.parametrize("args", [{"quantize": 8}, {"int8": True}])
def test_int8_without_data_is_a_one_line_error(args):
    with pytest.raises(ArgumentError, match=r"quantize=8 needs calibration images: pass data=") as e:
        DynamicYOLO("dy-yolo11n.yaml").export(format="openvino", imgsz=IMGSZ, **args)
    assert "\n" not in str(e.value)


def test_int8_without_nncf_names_the_extra(tiny_data, monkeypatch):
    monkeypatch.setitem(sys.modules, "nncf", None)  # `import nncf` raises ImportError
    with pytest.raises(DependencyError, match=r"needs the 'nncf' package.*pip install 'dydet\[export\]'"):
        DynamicYOLO("dy-yolo11n.yaml").export(format="openvino", quantize=8, data=str(tiny_data), imgsz=IMGSZ)


def test_int8_onnx_is_refused_with_the_reason(tiny_data):
    with pytest.raises(ArgumentError, match="offered for format=openvino only.*use format=openvino quantize=8"):
        DynamicYOLO("dy-yolo11n.yaml").export(format="onnx", quantize=8, data=str(tiny_data), imgsz=IMGSZ)
