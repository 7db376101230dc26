"""dydet's static checkpoints (YOLOv7-family `StaticDetectionModel`) load weights-only and initialise dynamic models."""

import pytest
import torch

from dydet.nn.builder import load_model_yaml
from dydet.nn.checkpoint import load_checkpoint, save_checkpoint
from dydet.nn.tasks import DynamicDetectionModel, StaticDetectionModel


def narrow(name: str, dynamic: bool) -> dict:
    d = load_model_yaml(f"{'dy-' if dynamic else ''}{name}.yaml", dynamic=dynamic)
    d.update(width_multiple=0.125, nc=3)
    return d


def trained_like(model: torch.nn.Module) -> torch.nn.Module:
    for m in model.modules():  # non-trivial BN statistics, so that a missed buffer would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("name", ["yolov7-tiny", "yolov7"])  # yolov7 has dydet's own layer, SPPCSPC
@pytest.mark.parametrize("how", ["dydet", "pickle"])
def test_static_checkpoint_loads_weights_only_and_exactly(tmp_path, name, how):
    torch.manual_seed(0)
    static = trained_like(StaticDetectionModel(narrow(name, dynamic=False), verbose=False)).eval()
    path = tmp_path / f"{name}.pt"
    if how == "dydet":
        save_checkpoint({"model": static, "epoch": -1, "train_args": {}}, path)
        torch.load(path, weights_only=True)  # plain containers and tensors only
    else:  # a pickled model, as torch.save / Ultralytics write it: dydet's layer classes are on the allow-list
        torch.save({"model": static, "epoch": -1, "train_args": {}}, path)
    loaded, _ = load_checkpoint(path)
    assert type(loaded) is StaticDetectionModel and not hasattr(loaded, "router")
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)[0], static(x)[0])


def test_dynamic_yolov7_checkpoint_with_sppcspc_round_trips(tmp_path):
    torch.manual_seed(0)
    model = trained_like(DynamicDetectionModel(narrow("yolov7", dynamic=True), verbose=False)).eval()
    save_checkpoint({"model": model, "epoch": -1}, tmp_path / "dy.pt")
    loaded, _ = load_checkpoint(tmp_path / "dy.pt")
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        for route in ("easy", "hard"):
            torch.testing.assert_close(loaded(x, route=route)[0], model(x, route=route)[0])


@pytest.mark.parametrize("how", ["dydet", "pickle"])
def test_pretrained_saved_static_yolov7_tiny_initialises_both_routes(tiny_data, tmp_path, how):
    from dydet.models.yolo.train import DynamicTrainer

    torch.manual_seed(3)
    static = trained_like(StaticDetectionModel("yolov7-tiny.yaml", nc=6, verbose=False))
    path = tmp_path / "yolov7-tiny.pt"
    ckpt = {"model": static, "epoch": -1, "train_args": {}}
    save_checkpoint(ckpt, path) if how == "dydet" else torch.save(ckpt, path)
    overrides = {"model": "dy-yolov7-tiny.yaml", "data": str(tiny_data), "project": str(tmp_path), "pretrained": path}
    trainer = DynamicTrainer(overrides=overrides)
    trainer.data = {"nc": 6, "channels": 3, "names": {i: str(i) for i in range(6)}}
    trainer.setup_model()  # what training does: `pretrained=` read by dydet's weights-only loader
    model = trainer.model.eval()
    assert isinstance(model, DynamicDetectionModel)
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        want = static.eval()(x)[0]
        for route in ("easy", "hard"):
            torch.testing.assert_close(model(x, route=route)[0], want, rtol=1e-4, atol=1e-4)
