"""Heterogeneous Dy models (dy-yolo11n-s, ...): easy route = the small static model, hard route = the larger one."""

from copy import deepcopy

import pytest
import torch
from torch import nn
from ultralytics import YOLO
from ultralytics.nn.modules import CBLinear
from ultralytics.nn.tasks import DetectionModel

from dydet import DynamicYOLO
from dydet.nn.builder import resolve_model_yaml
from dydet.nn.checkpoint import checkpoint_model, load_checkpoint, load_checkpoint_dict, save_checkpoint
from dydet.nn.tasks import DynamicDetectionModel
from dydet.utils.flops import _gflops, route_gflops, static_gflops

from .test_tasks import assert_one_route_runs, mixed_threshold, varied_images

PAIRS = [("yolo11", "n", "s"), ("yolo11", "s", "m"), ("yolo11", "m", "l"), ("yolo26", "n", "s"), ("yolov8", "n", "s")]
IMGSZ = 64


def params(modules) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


class _B1AndLinks(nn.Module):
    """B1 and the composite connections only: what the hard route adds to a static model of its scale."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        y, _ = self.model.run_trunk(x, score=False)
        return [self.model.model[t](y[self.model.model[t].f]) for t in self.model.graph.taps]


@pytest.mark.parametrize("base, easy, hard", PAIRS)
def test_pair_builds_with_the_easy_route_of_one_scale_and_the_hard_route_of_the_next(base, easy, hard):
    model = DynamicDetectionModel(f"dy-{base}{easy}-{hard}.yaml", nc=80, verbose=False).eval()
    small, large = (DetectionModel(f"{base}{s}.yaml", nc=80, verbose=False).eval() for s in (easy, hard))
    summary = model.route_summary(IMGSZ)
    assert summary["easy"]["params"] == params([small])
    assert summary["easy"]["gflops"] == pytest.approx(static_gflops(small, IMGSZ), rel=1e-9)
    b1 = [model.model[i] for i in model.graph.b1]
    links = [model.model[t] for t in model.graph.taps]
    assert summary["hard"]["params"] == params([large]) + params(b1) + params(links)
    extra = _gflops(_B1AndLinks(model), IMGSZ, 32)
    assert summary["hard"]["gflops"] == pytest.approx(static_gflops(large, IMGSZ) + extra, rel=1e-9)
    assert all(isinstance(m, CBLinear) and not m.conv.weight.any() for m in links)  # links start at zero
    with torch.no_grad():
        for route in ("easy", "hard"):
            assert model(torch.rand(1, 3, IMGSZ, IMGSZ), route=route)[0].shape[1] == 84


def test_names_resolve_to_the_family_yaml_and_wrong_pairs_are_refused():
    assert resolve_model_yaml("dy-yolo11n-s.yaml").name == "dy-yolo11.yaml"
    assert resolve_model_yaml("dy-yolo26n-s").name == "dy-yolo26.yaml"
    model = DynamicDetectionModel("dy-yolo11n-s.yaml", verbose=False)
    assert (model.yaml["scale"], model.yaml["hard_scale"], model.yaml["yaml_file"]) == ("n", "s", "dy-yolo11n-s.yaml")
    with pytest.raises(ValueError, match="hard route must be the larger scale; use dy-yolo11n-s.yaml") as e:
        DynamicDetectionModel("dy-yolo11s-n.yaml", verbose=False)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="use dy-yolo11n.yaml"):
        DynamicDetectionModel("dy-yolo11n-n.yaml", verbose=False)
    with pytest.raises(ValueError, match="no scales"):
        DynamicDetectionModel("dy-yolov7x-l.yaml", verbose=False)


def statics(folder, nc: int | None = None):
    """Random static yolo11n and yolo11s checkpoints with non-trivial BN statistics, as a user saves them."""
    paths = []
    for scale in "ns":
        torch.manual_seed(ord(scale))
        yolo = YOLO(f"yolo11{scale}.yaml")
        if nc:
            yolo.model = DetectionModel(f"yolo11{scale}.yaml", nc=nc, verbose=False)
        for m in yolo.model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
        paths.append(str(folder / f"yolo11{scale}.pt"))
        yolo.save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return statics(tmp_path_factory.mktemp("statics"), nc=6)


@pytest.fixture(scope="module")
def started(pair) -> DynamicDetectionModel:
    model = DynamicYOLO("dy-yolo11n-s.yaml", verbose=False)
    model.model = DynamicDetectionModel("dy-yolo11n-s.yaml", nc=6, verbose=False)
    model.load(tuple(pair))
    return model.model.eval()


def test_two_checkpoint_start_reproduces_both_static_models(pair, started):
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        for route, path in zip(("easy", "hard"), pair):
            static = checkpoint_model(load_checkpoint_dict(path)).eval()
            torch.testing.assert_close(started(x, route=route)[0], static(x)[0], rtol=1e-5, atol=1e-4)
    assert all(not started.model[t].conv.weight.any() for t in started.graph.taps)


def test_coco_statics_into_six_classes_transfer_what_fits(tmp_path):
    n, s = statics(tmp_path)  # 80 classes
    model = DynamicDetectionModel("dy-yolo11n-s.yaml", nc=6, verbose=False)
    report = model.load((checkpoint_model(load_checkpoint_dict(n)), checkpoint_model(load_checkpoint_dict(s))))
    assert [t.source for t in report.values()] == ["yolo11n", "yolo11s"]
    for t in report.values():
        assert 0 < len(t.pairs) < t.total and t.skipped and not any(backbone for *_, backbone in t.skipped)


def test_wrong_pairs_get_one_line_errors_naming_the_fix(pair):
    n, s = (checkpoint_model(load_checkpoint_dict(p)) for p in pair)
    model = DynamicDetectionModel("dy-yolo11n-s.yaml", nc=6, verbose=False)
    for weights, message in [
        ((s, n), "wrong order .* give the yolo11n checkpoint first"),
        ((n, n), "hard route needs a yolo11s checkpoint"),
        ((s, s), "easy route needs a yolo11n checkpoint"),
        (DetectionModel("yolo11m.yaml", nc=6, verbose=False), "does not match dy-yolo11n-s.yaml.*yolo11n or yolo11s"),
    ]:
        with pytest.raises(ValueError, match=message) as e:
            model.load(weights)
        assert "\n" not in str(e.value)


def test_one_checkpoint_starts_its_route_and_leaves_the_other_from_scratch(pair):
    n = checkpoint_model(load_checkpoint_dict(pair[0])).eval()
    model = DynamicDetectionModel("dy-yolo11n-s.yaml", nc=6, verbose=False)
    report = model.load(n)
    assert list(report) == ["easy"]
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x, route="easy")[0], n(x)[0], rtol=1e-5, atol=1e-4)


def test_mixed_batch_gives_each_image_its_output_alone(started):
    model, x = deepcopy(started), varied_images(6)
    torch.manual_seed(0)
    torch.nn.init.normal_(model.router.reduce.weight, std=2.0)  # spread the new router's scores
    torch.nn.init.normal_(model.router.score.weight, std=2.0)
    t = mixed_threshold(model, x)
    with torch.no_grad():
        y, routing = model.routed(x, t)
        assert set(routing.routes) == {"easy", "hard"}
        for i in range(len(x)):
            alone, r1 = model.routed(x[i : i + 1], t)
            assert r1.routes == [routing.routes[i]]
            torch.testing.assert_close(alone[0][0], y[0][i], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("route", ["easy", "hard"])
def test_a_one_route_batch_runs_no_module_of_the_other(started, route):
    assert_one_route_runs(started, varied_images(3), route)


def test_checkpoint_round_trip_keeps_the_scales(started, tmp_path):
    path = save_checkpoint({"model": started, "epoch": -1}, tmp_path / "pair.pt")
    loaded, _ = load_checkpoint(path)
    assert loaded.yaml["hard_scale"] == "s"
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for route in ("easy", "hard"):
            torch.testing.assert_close(loaded.eval()(x, route=route)[0], started(x, route=route)[0])
    assert route_gflops(loaded, "hard", 64) == route_gflops(started, "hard", 64)


def test_benchmark_of_a_pair_compares_both_static_scales_and_the_homogeneous_dy_model(tmp_path):
    from dydet.engine.benchmarks import benchmark_speed, default_baselines
    from dydet.engine.benchmarks.candidates import HardRoute, load_static
    from dydet.utils.torch_utils import fused_eval_copy

    torch.manual_seed(0)
    model = DynamicDetectionModel("dy-yolo11n-s.yaml", nc=3, verbose=False).eval()
    torch.nn.init.normal_(model.router.reduce.weight, std=2.0)
    torch.nn.init.normal_(model.router.score.weight, std=2.0)
    assert default_baselines(model) == ("yolo11n.yaml", "yolo11s.yaml", "dy-yolo11n.yaml")
    homogeneous = load_static("dy-yolo11n.yaml", 3)
    assert isinstance(homogeneous, HardRoute)
    assert static_gflops(homogeneous, IMGSZ) == pytest.approx(route_gflops(homogeneous.model, "hard", IMGSZ))
    r = benchmark_speed(
        model, hard_ratios=(0.5,), batch=2, seq=2, save_dir=tmp_path, imgsz=IMGSZ, reps=1, warmup=1, progress=False
    )
    assert r.meta["baselines"] == ["yolo11n", "yolo11s", "dy-yolo11n-hard"]
    gflops = {row["name"]: row["gflops"] for row in r.rows if "gflops" in row}
    fused = fused_eval_copy(model)
    assert gflops["yolo11n"] == pytest.approx(route_gflops(fused, "easy", IMGSZ))
    assert gflops["yolo11n"] < gflops["dy-yolo11n-hard"] < gflops["yolo11s"] < route_gflops(fused, "hard", IMGSZ)


def test_pretrained_pair_argument_is_read_and_checked_early(pair, tiny_data, tmp_path):
    from dydet.engine.args import prepare_train_args
    from dydet.nn.transfer import read_pretrained

    n, s = read_pretrained(f"{pair[0]},{pair[1]}")
    assert (n.yaml["yaml_file"], s.yaml["yaml_file"]) == ("yolo11n.yaml", "yolo11s.yaml")
    args = {"pretrained": f"{pair[0]},{pair[1]}", "data": str(tiny_data), "project": str(tmp_path)}
    assert prepare_train_args(args, {})["pretrained"] == args["pretrained"]
    with pytest.raises(FileNotFoundError, match="missing.pt") as e:
        prepare_train_args({**args, "pretrained": f"{pair[0]},{tmp_path / 'missing.pt'}"}, {})
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="one checkpoint .* or two"):
        read_pretrained(f"{pair[0]},{pair[0]},{pair[1]}")


@pytest.mark.slow
def test_cli_trains_a_pair_from_two_coco_statics_through_all_stages(tiny_data, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    n, s = statics(tmp_path)  # 80 classes, the tiny data has 6
    dydet = str(Path(sys.executable).with_name("dydet"))
    args = ["model=dy-yolo11n-s.yaml", f"data={tiny_data}", f"pretrained={n},{s}", "epochs=1", "imgsz=64", "batch=8"]
    args += ["workers=0", "stage2_epochs=1", f"project={tmp_path / 'runs'}", "name=pair", "plots=False"]
    out = subprocess.run([dydet, "train", *args], capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert "easy route <- yolo11n: transferred" in log and "hard route <- yolo11s: transferred" in log
    final = next((tmp_path / "runs").rglob("final.pt"))
    model = DynamicYOLO(final)
    assert model.model.yaml["hard_scale"] == "s" and model.model.stage == 2 and model.model.calibration
    results = model.predict(tiny_data.parent / "images" / "val", hard_ratio=0.5, imgsz=64, verbose=False)
    assert {r.route for r in results} == {"easy", "hard"}
