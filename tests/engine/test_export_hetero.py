"""Split ONNX / OpenVINO export of a scale pair (dy-yolo11n-s): each route and a mixed batch match PyTorch."""

import importlib.util
from copy import deepcopy

import pytest
import torch

from dydet.engine.exporter import export_onnx, export_openvino
from dydet.nn.backends.runtime import load_export

from .test_export import IMGSZ, assert_same_y, mid_threshold, tiny_model, torch_run, varied_images


@pytest.fixture(scope="module")
def model():
    return tiny_model("dy-yolo11n-s.yaml")


@pytest.fixture(scope="module")
def onnx_model(model, tmp_path_factory):
    return load_export(export_onnx(model, tmp_path_factory.mktemp("export") / "pair_onnx", imgsz=IMGSZ))


@pytest.mark.parametrize("route", ["easy", "hard"])
def test_each_route_of_the_onnx_export_matches_pytorch(model, onnx_model, route):
    x = varied_images(3)
    y_torch, routing = torch_run(model, x, route=route)
    y_onnx = onnx_model(x, route=route)
    assert routing.routes == [route] * 3
    assert_same_y(y_onnx, y_torch)
    reference = deepcopy(model).double()  # as exact as PyTorch fp32 is (see test_export)
    with torch.no_grad():
        truth = reference(x.double(), route=route)[0]
    assert (y_onnx.double() - truth).abs().max() <= 3 * (y_torch.double() - truth).abs().max() + 1e-6


def test_mixed_batch_of_the_onnx_export_matches_pytorch(model, onnx_model):
    x = varied_images()
    with torch.no_grad():
        t = mid_threshold(model.router_scores(x))
    y_torch, routing = torch_run(model, x, threshold=t)
    y_onnx, onnx_routing = onnx_model.routed(x, t)
    assert set(routing.routes) == {"easy", "hard"} and onnx_routing.routes == routing.routes
    assert_same_y(y_onnx, y_torch)


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino is not installed")
def test_openvino_export_routes_like_pytorch(model, tmp_path):
    ov = load_export(export_openvino(model, tmp_path / "pair_openvino", imgsz=IMGSZ))
    x = varied_images()
    with torch.no_grad():
        t = mid_threshold(model.router_scores(x))
    y_torch, routing = torch_run(model, x, threshold=t)
    y_ov, ov_routing = ov.routed(x, t)
    assert ov_routing.routes == routing.routes and set(routing.routes) == {"easy", "hard"}
    assert_same_y(y_ov, y_torch)
