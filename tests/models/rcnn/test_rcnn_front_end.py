"""The R-CNN family behind `DynamicYOLO` and the `dydet` command: dispatch, export refusal, CLI end to end."""

from pathlib import Path

import pytest
import torch
import yaml
from conftest import light_yaml

import dydet
from dydet import DynamicRCNN, DynamicYOLO
from dydet.cli import entrypoint
from dydet.models.rcnn import RCNNPredictor, RCNNRouterTrainer, RCNNTrainer, RCNNValidator
from dydet.nn.rcnn import RCNNDetectionModel
from dydet.utils.errors import ArgumentError


def test_dynamic_yolo_picks_the_rcnn_family_from_the_yaml():
    model = DynamicYOLO("dy-faster-rcnn-r18.yaml")
    assert type(model) is DynamicRCNN and type(DynamicYOLO("dy-yolo11n.yaml")) is DynamicYOLO
    assert isinstance(model.model, RCNNDetectionModel) and model.model.depth == 18
    classes = model.task_map["detect"]
    assert classes["trainer"] is RCNNTrainer and classes["router_trainer"] is RCNNRouterTrainer
    assert classes["validator"] is RCNNValidator and classes["predictor"] is RCNNPredictor
    assert DynamicYOLO("dy-yolo11n.yaml").task_map["detect"]["trainer"] is not RCNNTrainer


def test_an_rcnn_checkpoint_opens_as_dynamic_rcnn_and_keeps_its_record_name(tmp_path):
    model = DynamicRCNN("dy-faster-rcnn-r18.yaml")
    model.save(tmp_path / "frcnn.pt")
    assert torch.load(tmp_path / "frcnn.pt", weights_only=True)["model"]["class"] == "DynamicRCNN"  # the format
    loaded = DynamicYOLO(tmp_path / "frcnn.pt")
    assert type(loaded) is DynamicRCNN and isinstance(loaded.model, RCNNDetectionModel)
    assert dydet.DynamicRCNN is DynamicRCNN


def test_export_is_refused_with_one_line_and_no_files(tmp_path):
    model = DynamicYOLO("dy-faster-rcnn-r18.yaml")
    with pytest.raises(ArgumentError, match="does not support the R-CNN family") as e:
        model.export(format="onnx", project=str(tmp_path), name="x")
    assert "\n" not in str(e.value) and not any(tmp_path.iterdir())


@pytest.mark.slow
def test_cli_train_val_predict_benchmark_end_to_end(tiny_data, tmp_path, capsys):
    cfg = light_yaml(tmp_path)
    project = tmp_path / "runs"
    common = ["imgsz=128", "device=cpu", "workers=0", f"project={project}"]
    entrypoint(
        [
            "train",
            f"model={cfg}",
            f"data={tiny_data}",
            "epochs=2",
            "batch=4",
            "stage2_epochs=1",
            "plots=False",
            "name=frcnn",
            *common,
        ]
    )
    final = project / "frcnn-router" / "weights" / "final.pt"
    assert final.is_file()
    model = DynamicYOLO(str(final))
    assert isinstance(model.model, RCNNDetectionModel) and model.model.stage == 2 and model.model.calibration
    entrypoint(["val", f"model={final}", f"data={tiny_data}", "batch=4", "name=val", *common])
    out = capsys.readouterr()
    assert "random" in (out.out + out.err) or (project / "val" / "tradeoff.csv").is_file()
    source = Path(yaml.safe_load(Path(tiny_data).read_text())["path"]) / "images" / "val"
    results = model.predict(str(source), imgsz=128, hard_ratio=0.5, verbose=False)
    assert results and {r.route for r in results} <= {"easy", "hard"} and all(r.score is not None for r in results)
    assert all(len(r.boxes) == 0 or float(r.boxes.conf.min()) >= 0.25 for r in results)
    entrypoint(["predict", f"model={final}", f"source={source}", "hard_ratio=0.5", "name=pred", *common])
    entrypoint(
        [
            "benchmark",
            f"model={final}",
            "imgsz=128",
            "batch=2",
            "hard_ratios=[0,0.5,1]",
            f"project={project}",
            "name=bench",
        ]
    )
    assert any((project / "bench").glob("speed.*"))


def test_tune_is_refused_for_the_rcnn_family(tmp_path):
    with pytest.raises(ArgumentError, match="YOLO family only"):
        DynamicYOLO("dy-faster-rcnn-r18.yaml").tune(iterations=1, project=str(tmp_path))


def test_trainer_takes_a_torchvision_state_dict_as_pretrained(tiny_data, tmp_path):
    import torch

    from dydet.nn.rcnn import StaticRCNN

    static = StaticRCNN("faster-rcnn-r18.yaml", nc=6)
    torch.save(static.state_dict(), tmp_path / "frcnn.pth")
    overrides = {"model": "dy-faster-rcnn-r18.yaml", "data": str(tiny_data), "pretrained": str(tmp_path / "frcnn.pth")}
    trainer = RCNNTrainer(overrides={**overrides, "device": "cpu", "project": str(tmp_path), "name": "t"})
    trainer.setup_model()
    model = trainer.model
    assert isinstance(model, RCNNDetectionModel) and model.stage == 1
    assert torch.equal(model.b1.layer3[0].conv1.weight, static.backbone.body.layer3[0].conv1.weight)
    assert torch.equal(model.b2.layer3[0].conv1.weight, static.backbone.body.layer3[0].conv1.weight)
    assert torch.equal(model.roi_heads.box_predictor.cls_score.weight, static.roi_heads.box_predictor.cls_score.weight)


def test_optimizer_setup_of_the_yolo_trainer_leaves_an_rcnn_model_alone():
    """The R-CNN trainer inherits the YOLO trainer's optimizer hook (MuSGD boost of every head's class branches)."""
    import torch

    from dydet.models.yolo.train import boost_every_head
    from dydet.nn.rcnn.model import RCNNDetectionModel

    model = RCNNDetectionModel("dy-faster-rcnn-r18.yaml", nc=3, verbose=False)
    assert boost_every_head(torch.optim.SGD(model.parameters(), lr=0.01), model) == 0
