"""pretrained= a static model of another class count: what fits is transferred into each route, the rest reported."""

import re

import pytest
import torch
from ultralytics import YOLO

from dydet import DynamicYOLO
from dydet.nn.checkpoint import checkpoint_model, load_checkpoint_dict
from dydet.nn.tasks import DynamicDetectionModel


def coco_checkpoint(name: str, folder) -> str:
    """Save a random 80-class static model the way a user gets one from Ultralytics (`YOLO(yaml).save`)."""
    path = folder / f"{name}.pt"
    torch.manual_seed(0)
    YOLO(f"{name}.yaml").save(path)
    return str(path)


@pytest.mark.parametrize("name", ["yolo11n", "yolov8n", "yolo26n"])
def test_coco_model_into_six_classes_transfers_every_fitting_tensor(name, tmp_path, captured):
    path = coco_checkpoint(name, tmp_path)
    static = checkpoint_model(load_checkpoint_dict(path))
    model = DynamicDetectionModel(f"dy-{name}.yaml", nc=6, verbose=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = model.load(static)  # no error, although the class branches (and the n-scale hidden width) differ
    src, dst = static.state_dict(), model.state_dict()
    nb = len(model.yaml["backbone"])
    for route, transfer in report.items():
        assert 0 < len(transfer.pairs) <= transfer.total == len(src)
        assert len(transfer.pairs) + len(transfer.skipped) == transfer.total
        assert transfer.skipped and all(not backbone for *_, backbone in transfer.skipped)  # only head tensors
        for key, target in transfer.pairs:
            torch.testing.assert_close(dst[target], src[key].to(dst[target].dtype), rtol=0, atol=0)
        for _key, target, *_ in transfer.skipped:
            if target in before:
                torch.testing.assert_close(dst[target], before[target])  # kept as initialised
        backbone = {key for key in src if int(key.split(".")[1]) < nb}
        assert backbone <= {key for key, _ in transfer.pairs}, route
    lines = [line for line in captured if line.startswith("pretrained: ")]
    assert len(lines) == 2 and [line.split()[1] for line in lines] == ["easy", "hard"]
    for line in lines:
        n, total = map(int, re.search(r"transferred (\d+)/(\d+)", line).groups())
        assert n <= total == len(src) and "skipped" in line and ".cv3." in line


def test_backbone_of_another_family_is_still_refused(tmp_path):
    static = checkpoint_model(load_checkpoint_dict(coco_checkpoint("yolov8n", tmp_path)))
    model = DynamicDetectionModel("dy-yolo11n.yaml", nc=6, verbose=False)
    with pytest.raises(ValueError, match="does not match dy-yolo11n.yaml: model.2.* same base and scale") as e:
        model.load(static)
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_train_from_a_coco_model_on_six_classes(tiny_data, tmp_path, tiny_train, captured):
    path = coco_checkpoint("yolo11n", tmp_path)
    model = DynamicYOLO("dy-yolo11n.yaml")
    model.train(data=str(tiny_data), pretrained=path, stage=1, project=str(tmp_path / "runs"), **tiny_train)
    assert len(model.model.names) == 6
    lines = [line for line in captured if line.startswith("pretrained: ")]
    assert [line.split()[1] for line in lines] == ["easy", "hard"]
