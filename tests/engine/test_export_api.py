"""`DynamicYOLO.export` / prediction from an export folder, as `dydet export` and `dydet predict` use them."""

import importlib.util
import json

import numpy as np
import pytest

from dydet import DynamicYOLO
from dydet.routing import threshold_for_hard_ratio


def test_export_then_predict_from_the_folder(full_run, tiny_data, tmp_path):
    model = DynamicYOLO(full_run[0].ckpt_path)
    out = model.export(format="onnx", project=str(tmp_path), name="onnx")
    assert {p.name for p in out.iterdir()} >= {"router.onnx", "easy.onnx", "hard.onnx", "metadata.json"}
    exported = DynamicYOLO(out)
    source = tiny_data.parent / "images" / "val"
    onnx = exported.predict(str(source), hard_ratio=0.5, batch=4)
    torch_ = model.predict(str(source), hard_ratio=0.5, batch=4, imgsz=64)
    assert [r.route for r in onnx] == [r.route for r in torch_]
    # calibrated on these 12 images, so about half go hard (the validator's resize differs slightly from predict's)
    assert 3 <= [r.route for r in onnx].count("hard") <= 9
    metrics = exported.val(data=str(tiny_data), plots=False, project=str(tmp_path))  # validates like a .pt
    assert "metrics/mAP50-95(E)" in metrics.results_dict and len(metrics.scores) == 12


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino is not installed")
def test_openvino_export_then_predict_from_the_folder(full_run, tiny_data, tmp_path):
    model = DynamicYOLO(full_run[0].ckpt_path)
    out = model.export(format="OpenVINO", project=str(tmp_path), name="ov", hard_ratio=0.25)
    assert {p.name for p in out.iterdir()} >= {"router.xml", "easy.bin", "hard.xml", "metadata.json"}
    exported = DynamicYOLO(out)
    assert exported.exported.format == "openvino"
    source = str(tiny_data.parent / "images" / "val")
    ov = exported.predict(source, hard_ratio=0.5, batch=4)
    torch_ = model.predict(source, hard_ratio=0.5, batch=4, imgsz=64)
    assert [r.route for r in ov] == [r.route for r in torch_]
    assert [r.score for r in ov] == pytest.approx([r.score for r in torch_], abs=1e-5)
    metrics = exported.val(data=str(tiny_data), plots=False, project=str(tmp_path))  # validates like a .pt
    assert "metrics/mAP50-95(H)" in metrics.results_dict and len(metrics.scores) == 12


def test_export_refuses_other_formats(full_run):
    with pytest.raises(ValueError, match="format=onnx or format=openvino"):
        DynamicYOLO(full_run[0].ckpt_path).export(format="engine")


def test_a_folder_that_is_not_an_export_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="metadata.json"):
        DynamicYOLO(tmp_path)


def test_export_route_is_the_exports_default_route(full_run, tiny_data, tmp_path):
    """`dydet export route=easy` used to be accepted and dropped; it now sets the export's default route."""
    model = DynamicYOLO(full_run[0].ckpt_path)
    source = str(tiny_data.parent / "images" / "val")
    for route in ("easy", "hard"):
        out = model.export(format="onnx", project=str(tmp_path), name=route, route=route)
        assert json.loads((out / "metadata.json").read_text())["route"] == route
        results = DynamicYOLO(out).predict(source, batch=4, verbose=False)
        assert {(r.route, r.score) for r in results} == {(route, None)}
        # a routing argument at predict time still wins over the export's default
        assert {r.route for r in DynamicYOLO(out).predict(source, threshold=0.0, verbose=False)} == {"easy"}


def test_export_writes_its_routing_into_the_metadata_only(full_run, tmp_path):
    model = DynamicYOLO(full_run[0].ckpt_path)
    before = model.model.threshold
    cal = model.model.calibration
    g = cal["gflops"]
    mid = (g["easy"] + g["hard"]) / 2 + g["router"]
    out = model.export(format="onnx", project=str(tmp_path), name="budget", gflops=mid)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["threshold"] == threshold_for_hard_ratio(cal, 0.5) and meta["route"] is None
    assert "meets gflops=" in meta["routing"]
    out = model.export(format="onnx", project=str(tmp_path), name="t", threshold=0.123)
    assert json.loads((out / "metadata.json").read_text())["threshold"] == 0.123
    assert model.model.threshold == before  # export never changes the model


def test_val_at_a_gflops_budget_midway_sends_half_the_calibration_split_hard(full_run, tiny_data, tmp_path):
    model = DynamicYOLO(full_run[0].ckpt_path)
    g = model.model.calibration["gflops"]
    mid = (g["easy"] + g["hard"]) / 2 + g["router"]  # midway between the two routed routes
    args = dict(data=str(tiny_data), imgsz=64, batch=8, project=str(tmp_path), plots=False)
    metrics = model.val(gflops=mid, **args)
    assert metrics.routing.hard_ratio == 0.5 and metrics.routing.budget == ("gflops", mid)
    assert np.mean(np.asarray(metrics.scores) < metrics.routing.threshold) == 0.5  # the calibration split itself
    with pytest.raises(ValueError, match="out of reach"):
        model.val(gflops=g["hard"] * 2, **args)
    with pytest.raises(ValueError, match="out of reach"):
        model.predict(str(tiny_data.parent / "images" / "val"), gflops=g["easy"] / 2)
