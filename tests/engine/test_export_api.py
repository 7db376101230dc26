"""`DynamicYOLO.export` / prediction from an export folder, as `dydet export` and `dydet predict` use them."""

import importlib.util

import pytest

from dydet import DynamicYOLO


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
    with pytest.raises(ValueError, match="ONNX export"):
        exported.val(data=str(tiny_data))


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
    with pytest.raises(ValueError, match="is an OpenVINO export"):
        exported.val(data=str(tiny_data))


def test_export_refuses_other_formats(full_run):
    with pytest.raises(ValueError, match="format=onnx or format=openvino"):
        DynamicYOLO(full_run[0].ckpt_path).export(format="engine")


def test_a_folder_that_is_not_an_export_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="metadata.json"):
        DynamicYOLO(tmp_path)
