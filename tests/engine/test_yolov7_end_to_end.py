"""Dy-YOLOv7-tiny end to end: train (stage all), val, predict, export with ONNX parity, Python API and CLI."""

import pytest
from ultralytics.nn.tasks import load_checkpoint as ultralytics_load_checkpoint

from dydet import DynamicYOLO
from dydet.nn.checkpoint import load_checkpoint
from dydet.nn.tasks import DynamicDetectionModel


@pytest.fixture(scope="module")
def v7_run(tiny_data, tmp_path_factory):
    """Stage 1 + stage 2 + calibration of dy-yolov7-tiny at a quarter of its width (default-suite sized; the slow CLI
    test trains the real one) on the tiny dataset, one epoch each at 64 px."""
    from conftest import TINY_TRAIN, narrow_yaml

    project = tmp_path_factory.mktemp("v7runs")
    model = DynamicYOLO(str(narrow_yaml("dy-yolov7-tiny.yaml", project)))
    model.train(data=str(tiny_data), project=str(project), name="v7", stage2_epochs=1, **TINY_TRAIN)
    return model, project


def test_stage_all_leaves_a_calibrated_yolov7_tiny(v7_run):
    model, _ = v7_run
    loaded, _ = load_checkpoint(model.ckpt_path)
    assert isinstance(loaded, DynamicDetectionModel) and loaded.stage == 2
    assert loaded.yaml["family"] == "yolov7" and all(not h.legacy for h in loaded.heads)
    cal = loaded.calibration
    assert cal["gflops"]["hard"] > cal["gflops"]["easy"] > cal["gflops"]["router"] > 0
    assert 0 < loaded.threshold < 1


def test_val_and_predict_report_routes(v7_run, tiny_data):
    model, project = v7_run
    metrics = model.val(data=str(tiny_data), imgsz=64, batch=8, project=str(project), name="val", plots=False)
    assert metrics is not None
    results = model.predict(str(tiny_data.parent / "images" / "val"), hard_ratio=0.5, imgsz=64, batch=4)
    assert results and all(r.route in ("easy", "hard") and isinstance(r.score, float) for r in results)


def test_onnx_export_routes_like_pytorch(v7_run, tiny_data, tmp_path):
    model, _ = v7_run
    model = DynamicYOLO(model.ckpt_path)
    out = model.export(format="onnx", project=str(tmp_path), name="onnx")
    source = str(tiny_data.parent / "images" / "val")
    onnx = DynamicYOLO(out).predict(source, hard_ratio=0.5, batch=4)
    torch_ = model.predict(source, hard_ratio=0.5, batch=4, imgsz=64)
    assert [r.route for r in onnx] == [r.route for r in torch_]
    for a, b in zip(onnx, torch_):
        assert a.score == pytest.approx(b.score, abs=1e-5)
        assert len(a.boxes) == len(b.boxes)


@pytest.mark.slow
def test_cli_stage_all_then_val_predict_export_benchmark(tiny_data, tmp_path):
    from conftest import cli_end_to_end

    cli_end_to_end("dy-yolov7-tiny.yaml", tiny_data, tmp_path, "yolov7-tiny.yaml")


def test_benchmark_baselines_are_the_family_static_models():
    from types import SimpleNamespace

    from ultralytics.utils.torch_utils import get_flops

    from dydet.engine.benchmarks import default_baselines, load_static, static_base_name
    from dydet.nn.builder import load_model_yaml
    from dydet.nn.tasks import StaticDetectionModel
    from dydet.utils.flops import static_gflops

    dy = SimpleNamespace(yaml=load_model_yaml("dy-yolov7.yaml"))
    assert default_baselines(dy) == ("yolov7.yaml", "yolov7x.yaml") and static_base_name(dy) == "yolov7"
    yolo11 = SimpleNamespace(yaml=load_model_yaml("dy-yolo11n.yaml"))
    assert default_baselines(yolo11) == ("yolo11n.yaml", "yolo11s.yaml")
    assert isinstance(load_static("yolov7-tiny.yaml", nc=3), StaticDetectionModel)
    w6 = load_model_yaml("yolov7-w6.yaml", dynamic=False)
    w6.update(width_multiple=0.125, nc=3)
    w6 = StaticDetectionModel(w6, verbose=False)
    assert get_flops(w6, 256) == 0.0  # ultralytics takes the input width from the first conv, behind W6's ReOrg
    assert static_gflops(w6, 256) > 0


def test_pretrained_static_yolov7_tiny_checkpoint_initialises_both_routes(tiny_data, tmp_path):
    import torch

    from dydet.models.yolo.train import DynamicTrainer
    from dydet.nn.tasks import StaticDetectionModel

    torch.manual_seed(3)
    static = StaticDetectionModel("yolov7-tiny.yaml", nc=6, verbose=False)
    for m in static.modules():  # non-trivial BN statistics, so a missed buffer would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    torch.save({"model": static, "epoch": -1, "train_args": {}}, tmp_path / "yolov7-tiny.pt")
    overrides = {"model": "dy-yolov7-tiny.yaml", "data": str(tiny_data), "project": str(tmp_path)}
    trainer = DynamicTrainer(overrides=overrides)
    trainer.data = {"nc": 6, "channels": 3, "names": {i: str(i) for i in range(6)}}
    weights, _ = ultralytics_load_checkpoint(tmp_path / "yolov7-tiny.pt")  # a pickled static model the test made
    model = trainer.get_model(cfg="dy-yolov7-tiny.yaml", weights=weights, verbose=False).eval()
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        ref = static.eval()(x)[0]
        for route in ("easy", "hard"):
            torch.testing.assert_close(model(x, route=route)[0], ref, rtol=1e-4, atol=1e-4)
