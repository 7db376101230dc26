"""`DynamicYOLO` keeps the bookkeeping of Ultralytics' `Model`, pinned against a stock `YOLO` built the same way."""

from pathlib import Path

from ultralytics import YOLO
from ultralytics.utils import DEFAULT_CFG_DICT

from dydet import DynamicYOLO, cfg
from dydet.data.synthetic import make_dataset
from dydet.routing import RoutingSpec


def test_new_sets_what_model_new_sets():
    stock, model = YOLO("yolo11n.yaml"), DynamicYOLO("dy-yolo11n.yaml")
    assert model.overrides == {"model": "dy-yolo11n.yaml", "task": "detect"}
    assert model.overrides.keys() == stock.overrides.keys() and model.task == stock.task == "detect"
    assert model.model.args == {**DEFAULT_CFG_DICT, **model.overrides}
    assert model.model.args.keys() == stock.model.args.keys()
    assert model.model.task == stock.model.task
    assert (model.cfg, model.model_name) == ("dy-yolo11n.yaml",) * 2 and stock.model_name == stock.cfg
    assert (model.ckpt, model.ckpt_path) == (stock.ckpt, stock.ckpt_path) == ({}, None)


class RecordingValidator:
    """Stands in for a validator class: records its arguments; calling it "validates"."""

    made = []

    def __init__(self, args=None, _callbacks=None, routing=None):
        self.args, self.callbacks, self.routing, self.metrics = args, _callbacks, routing, None
        RecordingValidator.made.append(self)

    def __call__(self, model=None):
        self.model, self.metrics = model, f"metrics of {len(RecordingValidator.made)}"


def test_validate_runs_model_val_with_the_routing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = str(make_dataset("tiny", root=tmp_path / "datasets", verbose=False))  # val checks its data YAML first
    stock, model = YOLO("yolo11n.yaml"), DynamicYOLO("dy-yolo11n.yaml")
    stock_metrics = stock.val(validator=RecordingValidator, data=data, project="runs", batch=2)
    expected = {**RecordingValidator.made[-1].args, **model.overrides}
    spec = RoutingSpec.at(0.5)
    project = cfg.check_args("val", {"project": "runs"})["project"]  # made absolute where arguments enter
    metrics, validator = model._validate(RecordingValidator, routing=spec, data=data, project=project, batch=2)
    assert validator is RecordingValidator.made[-1] and validator.routing is spec and validator.model is model.model
    assert metrics == model.metrics == validator.metrics != stock_metrics
    assert validator.callbacks is model.callbacks
    assert validator.args == {**expected, "project": str(Path(tmp_path / "runs").resolve())}
    assert validator.args["rect"] is True and validator.args["mode"] == "val"
