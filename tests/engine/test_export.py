"""Split ONNX export (router / easy / hard graphs + metadata) and the onnxruntime routing runtime.

Tolerances, ONNX (onnxruntime CPU, fp32, fused) against PyTorch (CPU, fp32, eval, unfused) on the same weights:
routes identical; router scores atol 1e-5; boxes atol 0.25 px (the random test model's boxes reach ~800 px, so this
is 3e-4 relative); class scores atol 2e-3. These are the fp32 noise of a deep random-weights network, not export
error: `test_onnx_is_as_exact_as_pytorch` checks that ONNX stays within 3x PyTorch-fp32's own distance from an fp64
run of the same model (measured here: easy boxes 0.018 vs 0.025 px, hard 0.066 vs 0.046 px; class scores 7e-5 vs
9e-5 easy, 8.7e-4 vs 7.0e-4 hard).
"""

import json
import shutil
from copy import deepcopy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from ultralytics.utils.nms import non_max_suppression

from dydet.engine.args import pop_routing
from dydet.engine.exported import predict_exported
from dydet.engine.exporter import export_onnx, route_inputs
from dydet.models.yolo.model import DynamicYOLO
from dydet.nn.backends.format import InvalidExportError, is_export_dir
from dydet.nn.backends.runtime import load_export
from dydet.nn.tasks import DynamicDetectionModel
from dydet.routing import RoutingSpec, resolve_routing, threshold_for_hard_ratio

IMGSZ = 64
BOX_ATOL, CLS_ATOL, SCORE_ATOL = 0.25, 2e-3, 1e-5


def tiny_model(name: str = "dy-yolo11n.yaml") -> DynamicDetectionModel:
    """A random-weights model whose signals neither vanish nor tie, so that comparisons mean something.

    Default random weights shrink activations about tenfold per stage, leaving the heads with constant outputs:
    BatchNorm statistics are taken from varied images instead, every class-logit conv is rescaled to give logits of
    mean -2 and std 2 on them (a few confident, well-separated boxes per image), and the router is spread so that
    varied images route both ways.
    """
    torch.manual_seed(0)
    model = DynamicDetectionModel(name, nc=3, verbose=False)
    x = varied_images(64, seed=3)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: one batch sets the statistics
    with torch.no_grad():
        model.train()(x)
        model.eval()
        for bn in norms:
            bn.momentum = 0.03
        branches = ("cv2", "cv3", "one2one_cv2", "one2one_cv3")  # the last two: end-to-end heads (YOLO26)
        logits = [b[-1] for head in model.heads for name in branches for b in (getattr(head, name, None) or ())]
        outputs = {}
        hooks = [conv.register_forward_hook(lambda m, i, o: outputs.__setitem__(m, o)) for conv in logits]
        model(x, route="easy"), model(x, route="hard")
        for hook in hooks:
            hook.remove()
        for conv in logits:
            mean, std = outputs[conv].mean((0, 2, 3)), outputs[conv].std((0, 2, 3))
            target_mean = -2 if conv.out_channels == model.yaml["nc"] else 0  # class logits; box-distance bin logits
            conv.weight.mul_((2 / std).view(-1, 1, 1, 1))
            conv.bias.copy_((conv.bias - mean) * 2 / std + target_mean)
        torch.nn.init.normal_(model.router.score.weight, std=0.3)
    return model


def varied_images(n: int = 6, size: int = IMGSZ, seed: int = 1) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.rand(n, 3, size, size) * torch.linspace(0.95, 1.0, n).view(n, 1, 1, 1)


def mid_threshold(scores) -> float:
    s = sorted(float(v) for v in scores)
    k = len(s) // 2
    return (s[k - 1] + s[k]) / 2


class Spy:
    """Wrap an onnxruntime session and count its `run` calls."""

    def __init__(self, session):
        self.session, self.calls = session, 0

    def run(self, *args, **kwargs):
        self.calls += 1
        return self.session.run(*args, **kwargs)


@pytest.fixture(scope="module")
def model() -> DynamicDetectionModel:
    return tiny_model()


@pytest.fixture(scope="module")
def export_dir(model, tmp_path_factory) -> Path:
    return export_onnx(model, tmp_path_factory.mktemp("export") / "tiny_onnx", imgsz=IMGSZ)


@pytest.fixture(scope="module")
def onnx_model(export_dir):
    return load_export(export_dir)


@pytest.fixture
def spied(onnx_model):
    original = dict(onnx_model.sessions)
    onnx_model.sessions = {k: Spy(v) for k, v in original.items()}
    yield onnx_model
    onnx_model.sessions = original


def spec(threshold=None, route=None) -> RoutingSpec:
    return RoutingSpec.forced(route) if route else RoutingSpec.at(threshold)


def torch_run(model, x, **kwargs):
    with torch.no_grad():
        (y, _), routing = model.routed(x, spec(**kwargs))
    return y, routing


def assert_same_y(y_onnx: torch.Tensor, y_torch: torch.Tensor) -> None:
    assert y_onnx.shape == y_torch.shape
    torch.testing.assert_close(y_onnx[:, :4], y_torch[:, :4], rtol=0, atol=BOX_ATOL)
    torch.testing.assert_close(y_onnx[:, 4:], y_torch[:, 4:], rtol=0, atol=CLS_ATOL)


def test_export_layout_and_metadata(model, export_dir):
    assert sorted(p.name for p in export_dir.iterdir()) == ["easy.onnx", "hard.onnx", "metadata.json", "router.onnx"]
    assert is_export_dir(export_dir)
    meta = json.loads((export_dir / "metadata.json").read_text())
    assert meta["kind"] == "dydet-onnx-split" and meta["version"] == 1
    assert meta["imgsz"] == [IMGSZ, IMGSZ] and meta["strides"] == [8, 16, 32]
    assert meta["names"] == {"0": "0", "1": "1", "2": "2"} and meta["threshold"] == model.threshold
    graphs = meta["graphs"]
    # the heads read exactly the B1 outputs their layers' `f` point at; layer 0 is the image itself
    assert route_inputs(model, "easy") == [5, 7, 11] and route_inputs(model, "hard") == [0, 1, 3, 5, 7, 11]
    assert graphs["easy"]["inputs"] == ["b1_5", "b1_7", "b1_11"]
    assert graphs["hard"]["inputs"] == ["images", "b1_1", "b1_3", "b1_5", "b1_7", "b1_11"]
    assert graphs["router"] == {
        "file": "router.onnx",
        "inputs": ["images"],
        "outputs": ["score", "b1_1", "b1_3", "b1_5", "b1_7", "b1_11"],
    }


def test_export_argument_errors(model, tmp_path):
    from ultralytics.nn.tasks import DetectionModel

    with pytest.raises(ValueError, match="needs a dydet DynamicDetectionModel"):
        export_onnx(DetectionModel("yolo11n.yaml", nc=3, verbose=False), tmp_path)
    with pytest.raises(ValueError, match="opset=9 is too old"):
        export_onnx(model, tmp_path, imgsz=IMGSZ, opset=9)


def test_half_export_on_cpu_falls_back_to_fp32(model, tmp_path):
    meta = json.loads((export_onnx(model, tmp_path, imgsz=(IMGSZ, 96), half=True) / "metadata.json").read_text())
    assert meta["half"] is False and meta["imgsz"] == [IMGSZ, 96]  # non-square sizes work too


def test_export_leaves_the_model_unchanged(model, export_dir):
    assert not model.is_fused() and not model.training


def test_mixed_batch_matches_pytorch(model, onnx_model):
    x = varied_images()
    with torch.no_grad():
        t = mid_threshold(model.router_scores(x))
    y_torch, routing = torch_run(model, x, threshold=t)
    y_onnx, onnx_routing = onnx_model.routed(x, t)
    assert set(routing.routes) == {"easy", "hard"}
    assert onnx_routing.routes == routing.routes
    assert onnx_routing.threshold == routing.threshold == t
    torch.testing.assert_close(onnx_routing.score, routing.score, rtol=0, atol=SCORE_ATOL)
    torch.testing.assert_close(onnx_model(x, threshold=t), y_onnx)
    assert_same_y(y_onnx, y_torch)


@pytest.mark.parametrize("route", ["easy", "hard"])
def test_onnx_is_as_exact_as_pytorch(model, onnx_model, route):
    x = varied_images()
    reference = deepcopy(model).double()
    with torch.no_grad():
        truth = reference(x.double(), route=route)[0]
        err_torch = (model(x, route=route)[0].double() - truth).abs()
    err_onnx = (onnx_model(x, route=route).double() - truth).abs()
    for part in (slice(0, 4), slice(4, None)):  # boxes, class scores
        assert err_onnx[:, part].max() <= 3 * err_torch[:, part].max() + 1e-6


def nms_conf(y: torch.Tensor, low: float = 0.2, high: float = 0.4) -> float:
    """A confidence cut in [low, high] as far as possible from every class score, so that noise cannot flip a box."""
    s = y[:, 4:].amax(1).flatten().sort().values
    s = s[(s > low) & (s < high)]
    edges = torch.cat([torch.tensor([low]), s, torch.tensor([high])])
    k = int((edges[1:] - edges[:-1]).argmax())
    return float((edges[k] + edges[k + 1]) / 2)


def test_mixed_batch_matches_pytorch_after_nms(model, onnx_model):
    x = varied_images()
    with torch.no_grad():
        t = mid_threshold(model.router_scores(x))
    y_torch, routing = torch_run(model, x, threshold=t)
    y_onnx = onnx_model(x.numpy(), threshold=t)  # numpy input works as well
    conf = nms_conf(y_torch)
    det_torch, det_onnx = non_max_suppression(y_torch, conf), non_max_suppression(y_onnx, conf)
    for route in ("easy", "hard"):  # both routes contribute detections to the comparison
        assert sum(len(d) for d, r in zip(det_torch, routing.routes) if r == route) > 0
    for a, b in zip(det_onnx, det_torch):
        assert a.shape == b.shape
        torch.testing.assert_close(a[:, :4], b[:, :4], rtol=0, atol=BOX_ATOL)  # boxes
        torch.testing.assert_close(a[:, 4], b[:, 4], rtol=0, atol=CLS_ATOL)  # confidences
        assert torch.equal(a[:, 5], b[:, 5])  # classes


@pytest.mark.parametrize("route", ["easy", "hard"])
def test_forced_route_matches_pytorch(model, onnx_model, route):
    x = varied_images(3)
    y_torch, routing = torch_run(model, x, route=route)
    y_onnx, onnx_routing = onnx_model.routed(x, spec(route=route))
    assert onnx_routing.routes == routing.routes == [route] * 3
    assert onnx_routing.score is None and onnx_routing.threshold is None
    assert_same_y(y_onnx, y_torch)


def test_dynamic_batch_one_export_serves_batch_1_and_5(model, onnx_model):
    x = varied_images(5, seed=2)
    with torch.no_grad():
        t = mid_threshold(model.router_scores(x))
    y5, routing5 = onnx_model.routed(x, t)
    routes5 = routing5.routes
    assert set(routes5) == {"easy", "hard"}
    assert_same_y(y5, torch_run(model, x, threshold=t)[0])
    for i in range(5):
        y1, routing1 = onnx_model.routed(x[i : i + 1], t)
        assert routing1.routes == [routes5[i]]
        assert_same_y(y1, y5[i : i + 1])


def test_all_easy_batch_never_runs_the_hard_graph(spied):
    assert spied.routed(varied_images(4), 0.0)[1].routes == ["easy"] * 4
    calls = {k: s.calls for k, s in spied.sessions.items()}
    assert calls == {"router": 1, "easy": 1, "hard": 0}


def test_all_hard_batch_never_runs_the_easy_graph(spied):
    assert spied.routed(varied_images(4), 1.0)[1].routes == ["hard"] * 4
    calls = {k: s.calls for k, s in spied.sessions.items()}
    assert calls == {"router": 1, "easy": 0, "hard": 1}


def test_mixed_batch_runs_each_graph_once_on_its_subset(model, spied):
    x = varied_images()
    with torch.no_grad():
        t = mid_threshold(model.router_scores(x))
    spied(x, threshold=t)
    assert {k: s.calls for k, s in spied.sessions.items()} == {"router": 1, "easy": 1, "hard": 1}


def test_hard_ratio_uses_the_exported_calibration(tmp_path):
    model = tiny_model()
    x = varied_images()
    with torch.no_grad():
        scores = model.router_scores(x).tolist()
    model.calibration = {"scores": sorted(scores), "imgsz": IMGSZ, "n_images": len(scores)}
    model.threshold = threshold_for_hard_ratio(model.calibration, 0.5)
    onnx_model = load_export(export_onnx(model, tmp_path / "calibrated", imgsz=IMGSZ))
    assert onnx_model.calibration == model.calibration
    assert onnx_model.threshold == model.threshold
    for p in (0.0, 1 / 3, 0.5, 1.0):
        assert resolve_routing(onnx_model.calibration, hard_ratio=p) == resolve_routing(model.calibration, hard_ratio=p)
    assert onnx_model.routed(x, resolve_routing(onnx_model.calibration, hard_ratio=0.5))[1].hard_ratio == 0.5
    assert onnx_model.routed(x)[1].hard_ratio == 0.5  # default threshold from the metadata


def test_hard_ratio_without_calibration_is_a_clear_error(onnx_model):
    with pytest.raises(ValueError, match="hard_ratio= needs a calibrated model"):
        pop_routing(onnx_model, {"hard_ratio": 0.5})


def test_wrong_input_size_is_a_clear_error(onnx_model):
    with pytest.raises(ValueError, match=r"takes \(B, 3, 64, 64\) images"):
        onnx_model(torch.rand(1, 3, 96, 96))


@pytest.fixture
def broken(export_dir, tmp_path) -> Path:
    """A private copy of the export to damage."""
    return Path(shutil.copytree(export_dir, tmp_path / "copy"))


def edit_metadata(path: Path, **changes) -> None:
    meta = json.loads((path / "metadata.json").read_text())
    meta.update(changes)
    (path / "metadata.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "damage, error, message",
    [
        (lambda p: shutil.rmtree(p), FileNotFoundError, "export directory .* not found"),
        (lambda p: (p / "metadata.json").unlink(), FileNotFoundError, "metadata.json is missing"),
        (lambda p: (p / "hard.onnx").unlink(), FileNotFoundError, "hard.onnx' is missing"),
        (lambda p: (p / "router.onnx").write_bytes(b"\x00not onnx" * 100), InvalidExportError, "not a loadable ONNX"),
        (lambda p: (p / "metadata.json").write_text("{oops"), InvalidExportError, "not valid JSON"),
        (lambda p: edit_metadata(p, kind="ultralytics"), InvalidExportError, "describes a 'ultralytics' export"),
        (lambda p: edit_metadata(p, version=99), InvalidExportError, "version 99"),
        (lambda p: shutil.copy(p / "easy.onnx", p / "hard.onnx"), InvalidExportError, "does not belong"),
        (lambda p: edit_metadata(p, graphs={"router": {}}), InvalidExportError, "graph entries"),
    ],
    ids=["no-dir", "no-metadata", "no-graph", "corrupt-graph", "bad-json", "wrong-kind", "wrong-version",
         "swapped-graph", "bad-graph-table"],
)  # fmt: skip
def test_damaged_export_is_a_clear_one_line_error(broken, damage, error, message):
    damage(broken)
    with pytest.raises(error, match=message) as e:
        load_export(broken)
    assert "\n" not in str(e.value)


def test_metadata_without_a_format_is_read_as_onnx(broken):
    meta = json.loads((broken / "metadata.json").read_text())
    assert meta.pop("format") == "onnx"  # exports written before OpenVINO existed have no `format`
    (broken / "metadata.json").write_text(json.dumps(meta))
    assert load_export(broken).format == "onnx"


def test_graph_names_not_matching_the_metadata_are_a_clear_error(broken):
    meta = json.loads((broken / "metadata.json").read_text())
    meta["graphs"]["easy"]["inputs"] = ["b1_5", "b1_7", "b1_9"]
    meta["graphs"]["router"]["outputs"].append("b1_9")
    (broken / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(InvalidExportError, match="router.onnx' outputs are .* but metadata.json says"):
        load_export(broken)


def test_metadata_wiring_a_head_to_nothing_is_a_clear_error(broken):
    meta = json.loads((broken / "metadata.json").read_text())
    meta["graphs"]["hard"]["inputs"][-1] = "b1_9"
    (broken / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(InvalidExportError, match="hard input 'b1_9' is produced by no graph"):
        load_export(broken)


@pytest.fixture(scope="module")
def jpgs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("jpgs")
    rng = np.random.default_rng(0)
    for i, gain in enumerate((0.15, 0.5, 1.0)):
        im = (rng.random((96, 128, 3)) * 255 * gain).astype(np.uint8)
        cv2.imwrite(str(folder / f"im{i}.jpg"), im)
    return folder


def test_predict_exported_matches_the_pytorch_predictor(model, export_dir, jpgs):
    args = dict(conf=0.25, batch=3, device="cpu", verbose=False)
    pt = DynamicYOLO("dy-yolo11n.yaml")
    pt.model = model
    probe = pt.predict(jpgs, imgsz=IMGSZ, threshold=0.5, **args)
    t = mid_threshold([r.score for r in probe])
    expected = pt.predict(jpgs, imgsz=IMGSZ, threshold=t, **args)
    results = predict_exported(export_dir, jpgs, threshold=t, **args)
    assert len(results) == 3
    assert {r.route for r in results} == {"easy", "hard"}
    for r, e in zip(results, expected):
        assert Path(r.path).name == Path(e.path).name
        assert r.route == e.route and isinstance(r.score, float)
        assert r.score == pytest.approx(e.score, abs=SCORE_ATOL)
        assert r.names == e.names
        torch.testing.assert_close(r.boxes.xyxy, e.boxes.xyxy, rtol=0, atol=BOX_ATOL * 2)  # scaled back to 96x128
        torch.testing.assert_close(r.boxes.conf, e.boxes.conf, rtol=0, atol=CLS_ATOL)
        assert torch.equal(r.boxes.cls, e.boxes.cls)


def test_predict_exported_routes_by_hard_ratio_and_forced_route(tmp_path, jpgs):
    model = tiny_model()
    model.calibration = {"scores": [0.1, 0.2, 0.3, 0.4], "imgsz": IMGSZ, "n_images": 4}
    export_dir = export_onnx(model, tmp_path / "cal", imgsz=IMGSZ)
    assert {r.route for r in predict_exported(export_dir, jpgs, hard_ratio=0.0, verbose=False)} == {"easy"}
    assert {r.route for r in predict_exported(export_dir, jpgs, hard_ratio=1.0, verbose=False)} == {"hard"}
    forced = predict_exported(export_dir, jpgs, route="hard", verbose=False)
    assert [(r.route, r.score) for r in forced] == [("hard", None)] * 3
    with pytest.raises(ValueError, match="either threshold= or hard_ratio="):
        predict_exported(export_dir, jpgs, threshold=0.3, hard_ratio=0.5)
