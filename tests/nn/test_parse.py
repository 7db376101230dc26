import pytest
import torch
from ultralytics.nn.modules import Detect, DWConv
from ultralytics.nn.tasks import DetectionModel

import dydet  # noqa: F401  (offline settings before ultralytics)
from dydet.nn.builder import load_model_yaml
from dydet.nn.modules import SPPCSPC, ReOrg
from dydet.nn.parse import needs_dydet_parser, output_channels, parse_model
from dydet.nn.tasks import StaticDetectionModel


def is_yolo11_style(head: Detect) -> bool:
    """The YOLO11-style class branch starts with a depthwise conv; the legacy one with a full 3x3 Conv."""
    return isinstance(head.cv3[0][0], torch.nn.Sequential) and isinstance(head.cv3[0][0][0], DWConv)


def test_sppcspc_equals_the_parallel_5_9_13_pyramid():
    torch.manual_seed(0)
    m = SPPCSPC(8, 16).eval()
    assert [f"cv{i}" for i in range(1, 8)] == [n for n, _ in m.named_children() if n.startswith("cv")]
    x = torch.randn(2, 8, 20, 20)
    x1 = m.cv4(m.cv3(m.cv1(x)))
    pools = [torch.nn.functional.max_pool2d(x1, k, 1, k // 2) for k in (5, 9, 13)]
    want = m.cv7(torch.cat((m.cv6(m.cv5(torch.cat([x1, *pools], 1))), m.cv2(x)), 1))
    with torch.no_grad():
        torch.testing.assert_close(m(x), want)
    assert m(x).shape == (2, 16, 20, 20)


def test_reorg_is_space_to_depth_in_focus_order():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    y = ReOrg()(x)
    assert y.shape == (2, 12, 2, 2)
    torch.testing.assert_close(y[:, :3], x[..., ::2, ::2])
    torch.testing.assert_close(y[:, 3:6], x[..., 1::2, ::2])
    torch.testing.assert_close(y[:, 9:], x[..., 1::2, 1::2])


def test_yolov7_family_gets_the_yolo11_head_and_leaves_the_class_attribute_alone():
    old = Detect.legacy
    try:
        Detect.legacy = True  # as after building a YOLOv8 model
        v7 = StaticDetectionModel("yolov7-tiny.yaml", nc=3, verbose=False)
        assert Detect.legacy is True
        assert is_yolo11_style(v7.model[-1]) and v7.model[-1].legacy is False
        v8 = DetectionModel("yolov8n.yaml", nc=3, verbose=False)  # later models are built as Ultralytics builds them
        assert not is_yolo11_style(v8.model[-1])
        Detect.legacy = False
        StaticDetectionModel("yolov7-tiny.yaml", nc=3, verbose=False)
        assert Detect.legacy is False
    finally:
        Detect.legacy = old


def test_ultralytics_yamls_are_built_by_ultralytics_and_keep_their_head_style():
    d = load_model_yaml("dy-yolov8n.yaml")
    assert not needs_dydet_parser(d)
    old = Detect.legacy
    layers, _ = parse_model({**d, "backbone": d["backbone"] + d["head"], "head": []}, ch=3, verbose=False)
    assert Detect.legacy is old
    assert layers[-1].legacy is True and not is_yolo11_style(layers[-1])  # YOLOv8's own head, as Ultralytics builds it


def test_repconv_and_sppcspc_widths_are_tracked():
    d = {
        "nc": 2,
        "backbone": [
            [-1, 1, "Conv", [16, 3, 2]],
            [-1, 1, "RepConv", [24, 3, 1]],  # Ultralytics' parser would record 16 here
            [-1, 1, "SPPCSPC", [32]],
            [[-1, 1], 1, "Concat", [1]],
            [-1, 1, "ReOrg", []],
        ],
        "head": [],
    }
    assert needs_dydet_parser(d)
    assert output_channels(d) == [16, 24, 32, 56, 224]
    layers, save = parse_model(d, ch=3, verbose=False)
    assert save == [1]
    y1 = layers[1](layers[0](torch.zeros(1, 3, 32, 32)))
    assert layers[3]([layers[2](y1), y1]).shape[1] == 56


def test_width_multiple_scales_yolov7_rows():
    d = load_model_yaml("yolov7.yaml", dynamic=False)
    full = output_channels(d)
    small = output_channels({**d, "width_multiple": 0.25})
    assert full[50] == 1024 and small[50] == 256


def test_unknown_layer_in_a_yolov7_yaml_is_a_clear_error():
    d = {"nc": 2, "family": "yolov7", "backbone": [[-1, 1, "C3k2", [16]]], "head": []}
    with pytest.raises(ValueError, match="C3k2.*use one of"):
        parse_model(d, ch=3, verbose=False)


def test_bad_activation_is_a_clear_error():
    d = {"nc": 2, "family": "yolov7", "activation": "os.system('x')", "backbone": [[-1, 1, "Conv", [8]]], "head": []}
    with pytest.raises(ValueError, match="activation"):
        parse_model(d, ch=3, verbose=False)
