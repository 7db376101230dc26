"""Dy-YOLO26 end to end: train (stage all), NMS-free val and predict, ONNX export with parity, benchmark, CLI."""

import importlib.util

import pytest
import torch
from ultralytics.utils import nms

from dydet import DynamicYOLO
from dydet.nn.backends.runtime import load_export
from dydet.nn.checkpoint import load_checkpoint
from dydet.nn.tasks import DynamicDetectionModel


@pytest.fixture(scope="module")
def y26_run(tiny_data, tmp_path_factory):
    """Stage 1 + stage 2 + calibration of dy-yolo26n on the tiny dataset, one epoch each at 64 px."""
    from conftest import TINY_TRAIN

    project = tmp_path_factory.mktemp("y26runs")
    model = DynamicYOLO("dy-yolo26n.yaml")
    model.train(data=str(tiny_data), project=str(project), name="y26", stage2_epochs=1, **TINY_TRAIN)
    return model, project


@pytest.fixture
def nms_calls(monkeypatch):
    """Record how Ultralytics' NMS entry point is called: (end2end flag, prediction shape) per call."""
    calls, stock = [], nms.non_max_suppression

    def spy(prediction, *args, **kwargs):
        p = prediction[0] if isinstance(prediction, (list, tuple)) else prediction
        calls.append((kwargs.get("end2end", False), tuple(p.shape)))
        return stock(prediction, *args, **kwargs)

    monkeypatch.setattr(nms, "non_max_suppression", spy)
    return calls


def test_stage_all_leaves_a_calibrated_end_to_end_model(y26_run):
    model, _ = y26_run
    loaded, ckpt = load_checkpoint(model.ckpt_path)
    assert isinstance(loaded, DynamicDetectionModel) and loaded.stage == 2 and loaded.end2end_heads
    assert all(h.one2one_cv2 is not None and h.cv2 is not None for h in loaded.heads)  # saved unfused
    cal = loaded.calibration
    assert cal["gflops"]["hard"] > cal["gflops"]["easy"] > 0 and 0 < loaded.threshold < 1


def test_stage_one_trains_with_the_e2e_loss(y26_run):
    import csv

    _, project = y26_run
    rows = list(csv.DictReader((next(project.glob("y26*/results.csv"))).open()))
    assert {"train/e_box_loss", "train/h_box_loss", "train/e_dfl_loss"} <= {k.strip() for k in rows[0]}


def test_stage_1_and_stage_2_as_separate_runs(tiny_data, tiny_train, tmp_path):
    """`stage=1`, then `stage=2` on its checkpoint (router training on YOLO26's end-to-end losses), then calibration."""
    first = DynamicYOLO("dy-yolo26n.yaml")
    first.train(data=str(tiny_data), project=str(tmp_path), name="s1", stage="1", **tiny_train)
    stage1, _ = load_checkpoint(first.ckpt_path)
    assert stage1.stage == 1 and stage1.calibration is None
    second = DynamicYOLO(first.ckpt_path)
    second.train(data=str(tiny_data), project=str(tmp_path), name="s2", stage="2", stage2_epochs=1, **tiny_train)
    final, _ = load_checkpoint(second.ckpt_path)
    assert final.stage == 2 and final.end2end_heads and final.calibration is not None
    before, after = stage1.state_dict(), final.state_dict()
    detector = [k for k in before if "router" not in k]
    assert len(detector) > 100 and any("one2one" in k for k in detector)
    for key in detector:  # stage 2 trains the router only: both end-to-end heads and the backbones stay as they were
        torch.testing.assert_close(after[key], before[key], msg=key)
    assert any(not torch.equal(after[k], before[k]) for k in before if "router" in k)


def test_val_with_nms_false_runs_no_nms(y26_run, tiny_data, nms_calls):
    model, project = y26_run
    args = dict(data=str(tiny_data), imgsz=64, batch=8, project=str(project), plots=False)
    metrics = model.val(nms=False, name="val-e2e", **args)
    assert metrics is not None and "metrics/mAP50-95(E)" in metrics.results_dict
    assert nms_calls and all(e2e and shape[-1] == 6 for e2e, shape in nms_calls)  # (B, max_det, 6): filtered only
    nms_calls.clear()
    model.val(name="val-nms", **args)  # the default (nms unset), as Ultralytics: one-to-many outputs + NMS
    assert nms_calls and all(not e2e and shape[1] == 4 + len(model.names) for e2e, shape in nms_calls)


def test_predict_with_nms_false_is_nms_free_and_reports_routes(y26_run, tiny_data, nms_calls):
    model, _ = y26_run
    source = str(tiny_data.parent / "images" / "val")
    results = model.predict(source, hard_ratio=0.5, imgsz=64, batch=4, nms=False)
    assert results and all(r.route in ("easy", "hard") and isinstance(r.score, float) for r in results)
    assert {r.route for r in results} == {"easy", "hard"}
    assert nms_calls and all(e2e and shape[-1] == 6 for e2e, shape in nms_calls)


@pytest.mark.parametrize(
    "fmt",
    [
        "onnx",
        pytest.param(
            "openvino",
            marks=pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed"),
        ),
    ],
)
def test_split_export_nms_free_matches_pytorch(tmp_path, fmt):
    from dydet.engine.exporter import export_onnx, export_openvino

    from .test_export import tiny_model, varied_images

    model = tiny_model("dy-yolo26n.yaml")  # random weights with signals that neither vanish nor tie
    export = export_onnx if fmt == "onnx" else export_openvino
    exported = load_export(export(model, tmp_path / fmt, imgsz=64, end2end=True))
    assert exported.format == fmt
    assert exported.end2end and exported.metadata["end2end"] is True
    assert not model.end2end  # the model itself is not changed
    model.end2end = True
    x = varied_images(8, 64, seed=5)
    with torch.no_grad():
        t = float(model.router_scores(x).median())
        (want, _), routing = model.routed(x, t)
    got, got_routing = exported.routed(x.numpy(), t)
    got = torch.as_tensor(got)
    assert got_routing.routes == routing.routes and set(routing.routes) == {"easy", "hard"}
    assert got.shape == want.shape == (8, 84, 6)  # NMS-free rows: x1 y1 x2 y2 score class
    assert want[..., 4].max() > 0.5 and want[..., 4].std() > 0.05  # confident, distinct scores: no ties to reorder
    torch.testing.assert_close(got[..., 4], want[..., 4], rtol=0, atol=2e-3)
    torch.testing.assert_close(got[..., 5], want[..., 5])
    torch.testing.assert_close(got[..., :4], want[..., :4], rtol=0, atol=0.25)


def test_onnx_predict_with_nms_false_matches_pytorch(y26_run, tiny_data, tmp_path):
    model = DynamicYOLO(y26_run[0].ckpt_path)
    out = model.export(format="onnx", nms=False, project=str(tmp_path), name="onnx")
    source = str(tiny_data.parent / "images" / "val")
    onnx = DynamicYOLO(out).predict(source, hard_ratio=0.5, batch=4)
    torch_ = model.predict(source, hard_ratio=0.5, batch=4, imgsz=64, nms=False)
    assert [r.route for r in onnx] == [r.route for r in torch_]
    for a, b in zip(onnx, torch_):
        assert a.score == pytest.approx(b.score, abs=1e-5)
        assert len(a.boxes) == len(b.boxes)


@pytest.mark.slow
def test_resume_of_each_stage(tiny_data, tmp_path, tiny_train):
    """Ultralytics' resume rebuilds an end-to-end model's criterion and calls its `update` (stage 2 too)."""
    from .test_resume import _epochs, _interrupt

    for stage_trainer, run in (("DynamicTrainer", "r1"), ("RouterTrainer", "r2")):
        model = DynamicYOLO("dy-yolo26n.yaml")
        _interrupt(model, stage_trainer)
        with pytest.raises(KeyboardInterrupt):
            model.train(
                data=str(tiny_data), project=str(tmp_path), name=run, stage2_epochs=2, **{**tiny_train, "epochs": 2}
            )
        folder = run if stage_trainer == "DynamicTrainer" else f"{run}-router"
        DynamicYOLO(str(tmp_path / folder / "weights" / "last.pt")).train(resume=True)
        assert _epochs(tmp_path / folder) == [1, 2]
        final, _ = load_checkpoint(tmp_path / f"{run}-router" / "weights" / "final.pt")
        assert final.stage == 2 and final.calibration is not None


def test_export_refuses_nms_inside_split_graphs(y26_run, tmp_path):
    from dydet.utils.errors import ArgumentError

    with pytest.raises(ArgumentError, match="nms=True"):
        DynamicYOLO(y26_run[0].ckpt_path).export(format="onnx", nms=True, project=str(tmp_path), name="x")


def test_benchmark_baselines_are_static_yolo26():
    from types import SimpleNamespace

    from dydet.engine.benchmarks import default_baselines, static_base_name
    from dydet.nn.builder import load_model_yaml

    dy = SimpleNamespace(yaml=load_model_yaml("dy-yolo26n.yaml"))
    assert default_baselines(dy) == ("yolo26n.yaml", "yolo26s.yaml") and static_base_name(dy) == "yolo26n"


@pytest.mark.slow
def test_cli_stage_all_then_val_predict_export_benchmark(tiny_data, tmp_path):
    from conftest import cli_end_to_end

    logs = cli_end_to_end("dy-yolo26n.yaml", tiny_data, tmp_path, "yolo26n.yaml,yolo26s.yaml", "nms=False")
    assert "easy" in logs["predict"] or "hard" in logs["predict"]
    assert "yolo26n" in logs["benchmark"] and "yolo26s" in logs["benchmark"]
