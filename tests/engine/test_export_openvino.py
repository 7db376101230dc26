"""Split OpenVINO IR export (router / easy / hard graphs + metadata) and the OpenVINO routing runtime.

The same parity checks against PyTorch as `test_export.py` makes for ONNX, with the same tolerances (OpenVINO CPU,
fp32 inference, fused graphs, against PyTorch CPU fp32 unfused): routes identical, scores, boxes and class scores
within the fp32 noise of the random test model, the same detections after NMS.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ultralytics.utils.nms import non_max_suppression

from dydet.engine.exported import predict_exported
from dydet.engine.exporter import export_openvino
from dydet.models.yolo.model import DynamicYOLO
from dydet.nn.backends.format import InvalidExportError, read_metadata
from dydet.nn.backends.runtime import load_export
from dydet.routing import RoutingSpec

from .test_export import (
    BOX_ATOL,
    CLS_ATOL,
    IMGSZ,
    SCORE_ATOL,
    Spy,
    assert_same_y,
    jpgs,  # noqa: F401  (fixture)
    mid_threshold,
    model,  # noqa: F401  (fixture)
    nms_conf,
    torch_run,
    varied_images,
)

# not pytest.importorskip: a plain `import openvino` would start OpenVINO's telemetry in the test process
pytestmark = pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino is not installed")


@pytest.fixture(scope="module")
def ov_dir(model, tmp_path_factory) -> Path:  # noqa: F811
    return export_openvino(model, tmp_path_factory.mktemp("export") / "tiny_openvino", imgsz=IMGSZ)


@pytest.fixture(scope="module")
def ov_model(ov_dir):
    return load_export(ov_dir)


def test_export_layout_and_metadata(model, ov_dir):  # noqa: F811
    files = sorted(p.name for p in ov_dir.iterdir())
    assert files == [f"{g}.{s}" for g in ("easy", "hard") for s in ("bin", "xml")] + [
        "metadata.json",
        "router.bin",
        "router.xml",
    ]
    assert not [p for p in ov_dir.parent.iterdir() if p.name.startswith(".")]  # the temporary folder is gone
    meta = json.loads((ov_dir / "metadata.json").read_text())
    assert meta["format"] == "openvino" and meta["version"] == 1
    assert meta["imgsz"] == [IMGSZ, IMGSZ] and meta["threshold"] == model.threshold
    assert {g: meta["graphs"][g]["file"] for g in ("router", "easy", "hard")} == {
        "router": "router.xml",
        "easy": "easy.xml",
        "hard": "hard.xml",
    }
    assert meta["graphs"]["hard"]["inputs"] == ["images", "b1_1", "b1_3", "b1_5", "b1_7", "b1_11"]


def test_the_runtime_is_openvino(ov_model):
    from dydet.nn.backends.openvino import OpenVinoSession

    assert ov_model.format == "openvino" and ov_model.label == "OpenVINO"
    assert all(isinstance(s, OpenVinoSession) for s in ov_model.sessions.values())


def test_mixed_batch_matches_pytorch(model, ov_model):  # noqa: F811
    x = varied_images()
    with torch.no_grad():
        t = mid_threshold(model.router_scores(x))
    y_torch, routing = torch_run(model, x, threshold=t)
    y_ov, ov_routing = ov_model.routed(x, t)
    assert set(routing.routes) == {"easy", "hard"}
    assert ov_routing.routes == routing.routes
    assert ov_routing.threshold == routing.threshold == t
    torch.testing.assert_close(ov_routing.score, routing.score, rtol=0, atol=SCORE_ATOL)
    assert_same_y(y_ov, y_torch)


def test_mixed_batch_matches_pytorch_after_nms(model, ov_model):  # noqa: F811
    x = varied_images()
    with torch.no_grad():
        t = mid_threshold(model.router_scores(x))
    y_torch, routing = torch_run(model, x, threshold=t)
    y_ov = ov_model(x, threshold=t)
    conf = nms_conf(y_torch)
    det_torch, det_ov = non_max_suppression(y_torch, conf), non_max_suppression(y_ov, conf)
    for route in ("easy", "hard"):  # both routes contribute detections to the comparison
        assert sum(len(d) for d, r in zip(det_torch, routing.routes) if r == route) > 0
    for a, b in zip(det_ov, det_torch):
        assert a.shape == b.shape
        torch.testing.assert_close(a[:, :4], b[:, :4], rtol=0, atol=BOX_ATOL)
        torch.testing.assert_close(a[:, 4], b[:, 4], rtol=0, atol=CLS_ATOL)
        assert torch.equal(a[:, 5], b[:, 5])


@pytest.mark.parametrize("route", ["easy", "hard"])
def test_forced_route_matches_pytorch(model, ov_model, route):  # noqa: F811
    x = varied_images(3)
    y_torch, routing = torch_run(model, x, route=route)
    y_ov, ov_routing = ov_model.routed(x, RoutingSpec.forced(route))
    assert ov_routing.routes == routing.routes == [route] * 3
    assert ov_routing.score is None and ov_routing.threshold is None
    assert_same_y(y_ov, y_torch)


def test_batch_1_and_a_mixed_batch_agree(model, ov_model):  # noqa: F811
    x = varied_images(5, seed=2)
    with torch.no_grad():
        t = mid_threshold(model.router_scores(x))
    y5, routing5 = ov_model.routed(x, t)
    for i in (0, 4):
        y1, routing1 = ov_model.routed(x[i : i + 1], t)
        assert_same_y(y1, y5[i : i + 1])
        assert routing1.routes == [routing5.routes[i]]


@pytest.mark.parametrize(
    "threshold, calls", [(0.0, {"router": 1, "easy": 1, "hard": 0}), (1.0, {"router": 1, "easy": 0, "hard": 1})]
)
def test_only_the_routes_a_batch_needs_run(ov_model, threshold, calls):
    original = dict(ov_model.sessions)
    ov_model.sessions = {k: Spy(v) for k, v in original.items()}
    try:
        ov_model(varied_images(4), threshold=threshold)
        assert {k: s.calls for k, s in ov_model.sessions.items()} == calls
    finally:
        ov_model.sessions = original


def test_predict_exported_matches_the_pytorch_predictor(model, ov_dir, jpgs):  # noqa: F811
    args = dict(conf=0.25, batch=3, device="cpu", verbose=False)
    pt = DynamicYOLO("dy-yolo11n.yaml")
    pt.model = model
    probe = pt.predict(jpgs, imgsz=IMGSZ, threshold=0.5, **args)
    t = mid_threshold([r.score for r in probe])
    expected = pt.predict(jpgs, imgsz=IMGSZ, threshold=t, **args)
    results = predict_exported(ov_dir, jpgs, threshold=t, **args)
    assert {r.route for r in results} == {"easy", "hard"}
    for r, e in zip(results, expected):
        assert r.route == e.route and r.score == pytest.approx(e.score, abs=SCORE_ATOL)
        torch.testing.assert_close(r.boxes.xyxy, e.boxes.xyxy, rtol=0, atol=BOX_ATOL * 2)
        torch.testing.assert_close(r.boxes.conf, e.boxes.conf, rtol=0, atol=CLS_ATOL)
        assert torch.equal(r.boxes.cls, e.boxes.cls)
    forced = predict_exported(ov_dir, jpgs, route="hard", verbose=False)
    assert [(r.route, r.score) for r in forced] == [("hard", None)] * 3


def test_fp32_by_default_and_openvino_s_own_precision_with_half(model, ov_model, tmp_path):  # noqa: F811
    from dydet.nn.backends.openvino import core

    def precision(m):
        return m.sessions["hard"].compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()

    assert ov_model.metadata["inference_precision"] == "f32" and precision(ov_model) == "f32"
    half = load_export(export_openvino(model, tmp_path / "half", imgsz=IMGSZ, half=True))
    assert half.metadata["inference_precision"] == "auto" and half.metadata["weights_fp16"] is True
    default = core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()  # bf16 where the CPU has it
    assert precision(half) == default


def test_reexport_replaces_the_folder_whole(model, tmp_path):  # noqa: F811
    out = tmp_path / "again"
    out.mkdir()
    (out / "stale.txt").write_text("from an older export")
    export_openvino(model, out, imgsz=IMGSZ)
    assert not (out / "stale.txt").exists() and read_metadata(out)["format"] == "openvino"
    assert [p.name for p in tmp_path.iterdir()] == ["again"]


@pytest.mark.parametrize(
    "damage, error, message",
    [
        (lambda p: (p / "hard.bin").unlink(), FileNotFoundError, "hard.bin' is missing"),
        (lambda p: (p / "router.xml").write_text("<net>oops"), InvalidExportError, "not a loadable OpenVINO graph"),
        (lambda p: [(p / f"easy.{s}").write_bytes((p / f"hard.{s}").read_bytes()) for s in ("xml", "bin")],
         InvalidExportError, "does not belong"),
        (lambda p: edit_metadata(p, format="tflite"), InvalidExportError, "format 'tflite'"),
    ],
    ids=["no-weights", "corrupt-graph", "swapped-graph", "unknown-format"],
)  # fmt: skip
def test_damaged_export_is_a_clear_one_line_error(ov_dir, tmp_path, damage, error, message):
    import shutil

    broken = Path(shutil.copytree(ov_dir, tmp_path / "copy"))
    damage(broken)
    with pytest.raises(error, match=message) as e:
        load_export(broken)
    assert "\n" not in str(e.value)


def edit_metadata(path: Path, **changes) -> None:
    meta = json.loads((path / "metadata.json").read_text())
    meta.update(changes)
    (path / "metadata.json").write_text(json.dumps(meta))


def test_openvino_runs_on_the_cpu_only(ov_dir):
    with pytest.raises(ValueError, match="not available to an OpenVINO export: use device=cpu"):
        load_export(ov_dir, device="cuda:0")


def test_missing_openvino_is_a_one_line_error_naming_the_extra(model, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    with pytest.raises(
        ImportError, match=r"^format=openvino needs the 'openvino' package: pip install 'dydet\[openvino\]'$"
    ):
        export_openvino(model, tmp_path / "never", imgsz=IMGSZ)
    assert not (tmp_path / "never").exists()


def test_importing_openvino_sends_no_telemetry(tmp_path):
    """`import openvino` alone would write a client id under ~/intel and send an event; dydet's import does not."""
    code = (
        "from dydet.nn.backends.openvino import import_openvino\n"
        "import_openvino()\n"
        "import openvino.tools.ovc.telemetry_utils as t, sys\n"
        "print(t.tm.__name__, 'openvino_telemetry' in sys.modules)\n"
    )
    env = {**os.environ, "HOME": str(tmp_path), "CI": "false"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["openvino.tools.ovc.telemetry_stub", "False"]
    assert not (tmp_path / "intel").exists()


def test_cli_export_without_openvino_is_one_line(monkeypatch, capsys, tmp_path):
    from dydet.cli import entrypoint

    monkeypatch.setitem(sys.modules, "openvino", None)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        entrypoint(["export", "model=dy-yolo11n.yaml", "format=openvino", "imgsz=64"])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err == "dydet: format=openvino needs the 'openvino' package: pip install 'dydet[openvino]'"
    assert list(tmp_path.iterdir()) == []
