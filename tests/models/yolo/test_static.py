"""StaticYOLO: the static YOLOv7-family models (which Ultralytics cannot build) train, validate and predict."""

import pytest
import torch

from dydet.models.yolo.static import StaticYOLO
from dydet.nn.checkpoint import load_checkpoint_dict
from dydet.nn.tasks import StaticDetectionModel
from dydet.utils.errors import CheckpointError


@pytest.fixture(scope="module")
def static_run(tiny_data, tmp_path_factory):
    """One epoch of a quarter-width yolov7-tiny on the tiny dataset."""
    from conftest import TINY_TRAIN, narrow_yaml

    project = tmp_path_factory.mktemp("static")
    model = StaticYOLO(str(narrow_yaml("yolov7-tiny.yaml", project)))
    metrics = model.train(data=str(tiny_data), project=str(project), name="s", **TINY_TRAIN)
    return model, metrics, project


def test_static_yolo_trains_yolov7_tiny_into_a_weights_only_checkpoint(static_run):
    model, metrics, project = static_run
    assert isinstance(model.model, StaticDetectionModel)
    assert metrics is not None and "metrics/mAP50-95(B)" in metrics.results_dict
    best = project / "s" / "weights" / "best.pt"
    assert model.ckpt_path == str(best)
    ckpt = load_checkpoint_dict(best)  # weights-only: dydet's loader refuses a pickled model unless trusted
    assert isinstance(ckpt["model"], StaticDetectionModel) and ckpt.get("optimizer") is None
    assert isinstance(torch.load(best, weights_only=True)["model"], dict)  # a record of tensors, no pickled class


def test_static_checkpoint_validates_predicts_and_loads_into_both_routes(static_run, tiny_data, tmp_path):
    from dydet.models.yolo.train import DynamicTrainer

    model, _, project = static_run
    m = StaticYOLO(model.ckpt_path).val(data=str(tiny_data), imgsz=64, batch=4, project=str(tmp_path), plots=False)
    assert 0.0 <= m.box.map <= 1.0
    results = model.predict(str(tiny_data.parent / "images" / "val"), imgsz=64, verbose=False)
    assert len(results) > 0 and all(r.boxes is not None for r in results)

    from conftest import narrow_yaml

    cfg = narrow_yaml("dy-yolov7-tiny.yaml", tmp_path, nc=len(model.model.names))
    trainer = DynamicTrainer(overrides={"model": str(cfg), "data": str(tiny_data), "project": str(tmp_path)})
    trainer.data = {"nc": len(model.model.names), "channels": 3, "names": model.model.names}
    from dydet import DynamicYOLO

    trained = trainer.get_model(cfg=str(cfg), weights=model.model, verbose=False).eval()  # what pretrained= does
    loaded = DynamicYOLO(str(cfg)).load(model.ckpt_path).model.eval()  # from the file, weights-only
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ref = model.model.float().eval()(x)[0]
        for dy in (trained, loaded):
            for route in ("easy", "hard"):
                torch.testing.assert_close(dy(x, route=route)[0], ref, rtol=1e-4, atol=1e-4)


def test_static_yolo_refuses_a_dynamic_checkpoint(tmp_path):
    from dydet import DynamicYOLO

    path = tmp_path / "dy.pt"
    DynamicYOLO("dy-yolov7-tiny.yaml").save(path)
    with pytest.raises(CheckpointError, match="not a static dydet model"):
        StaticYOLO(path)


def test_dynamic_front_end_refuses_a_static_checkpoint_with_a_hint(static_run):
    from dydet import DynamicYOLO

    model, _, _ = static_run
    with pytest.raises(CheckpointError, match="static .*not a dydet dynamic model.*pretrained="):
        DynamicYOLO(model.ckpt_path)


def test_a_second_run_of_the_same_name_gets_its_own_folder(static_run, tiny_data):
    from conftest import TINY_TRAIN

    model, _, project = static_run
    again = StaticYOLO(model.ckpt_path.replace("best.pt", "last.pt"))
    again.train(data=str(tiny_data), project=str(project), name="s", **TINY_TRAIN)
    assert again.ckpt_path == str(project / "s-2" / "weights" / "best.pt")  # dydet's atomic `name-2`, not `s2`
