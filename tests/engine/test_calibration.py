from pathlib import Path

import numpy as np
import pytest

from dydet import DynamicYOLO, cfg
from dydet.routing import hard_ratio_for_threshold, threshold_for_hard_ratio
from dydet.utils.errors import UsageError


def test_threshold_for_hard_ratio_sends_exactly_that_share():
    rng = np.random.default_rng(0)
    cal = {"scores": rng.random(200).tolist()}
    scores = np.asarray(cal["scores"])
    for p in np.linspace(0, 1, 21):
        t = threshold_for_hard_ratio(cal, p)
        assert (scores < t).mean() == pytest.approx(round(p * 200) / 200) if t < 1 else p == 1
        assert hard_ratio_for_threshold(cal, t) == pytest.approx(round(p * 200) / 200)
    assert threshold_for_hard_ratio(cal, 0) == 0.0 and threshold_for_hard_ratio(cal, 1) == 1.0


@pytest.mark.parametrize("bad", [-0.1, 1.01, 7, "half"])
def test_bad_hard_ratio(bad):
    with pytest.raises(UsageError, match="hard_ratio="):  # where it enters; the rule then trusts it
        cfg.check_args("val", {"hard_ratio": bad})


def test_val_at_a_hard_ratio_routes_that_share_of_the_validation_split(full_run, tiny_data, tmp_path):
    model = DynamicYOLO(full_run[0].ckpt_path)
    for p in (0.25, 0.5, 0.75):
        metrics = model.val(data=str(tiny_data), imgsz=64, batch=8, project=str(tmp_path), hard_ratio=p, plots=False)
        t = threshold_for_hard_ratio(model.model.calibration, p)
        assert (np.asarray(metrics.scores) < t).mean() == pytest.approx(round(p * 12) / 12)
        assert metrics.selected is not None


def test_routed_metrics_at_the_extremes_equal_each_route(full_run, tiny_data, tmp_path):
    model = DynamicYOLO(full_run[0].ckpt_path)
    metrics = model.val(data=str(tiny_data), imgsz=64, batch=8, project=str(tmp_path), plots=False)
    n = len(metrics.scores)
    assert metrics.tradeoff is not None and [r["hard_ratio"] for r in metrics.tradeoff] == cfg.default("hard_ratios")
    easy = metrics.routed(np.zeros(n, dtype=bool)).mean_results()
    hard = metrics.routed(np.ones(n, dtype=bool)).mean_results()
    assert easy == pytest.approx(metrics.routes["easy"].mean_results())
    assert hard == pytest.approx(metrics.routes["hard"].mean_results())
    rows = metrics.tradeoff
    assert rows[0]["mAP50-95"] == pytest.approx(easy[3]) and rows[-1]["mAP50-95"] == pytest.approx(hard[3])
    assert rows[0]["GFLOPs"] < rows[5]["GFLOPs"] < rows[-1]["GFLOPs"]
    assert (tmp_path / "val" / "tradeoff.csv").is_file()


def test_calibration_costs_are_those_of_the_fused_model_as_deployed():
    """The stored GFLOPs are counted on the fused model: the easy route costs what the fused static base costs."""
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils.torch_utils import get_flops

    from dydet.engine.calibration import build_calibration
    from dydet.nn.tasks import DynamicDetectionModel
    from dydet.utils.flops import route_gflops

    model = DynamicDetectionModel("dy-yolo11n.yaml", nc=3, verbose=False).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cal = build_calibration(model, [0.2, 0.7], imgsz=64, data="x.yaml")
    static = DetectionModel("yolo11n.yaml", nc=3, verbose=False).eval().fuse(verbose=False)
    assert cal["gflops"]["easy"] == pytest.approx(get_flops(static, 64), rel=1e-6)
    assert cal["gflops"]["easy"] < route_gflops(model, "easy", 64)  # the unfused model also counts BatchNorm
    assert not model.is_fused() and all(v.equal(before[k]) for k, v in model.state_dict().items())


def saturated(model):
    """Make a model's router act like one trained until its scores saturate: logits scaled up, shifted towards easy."""
    import torch

    with torch.no_grad():
        model.router.score.weight.mul_(400)
        model.router.score.bias.add_(6)
    model.stage = 2
    return model


@pytest.mark.parametrize("family", ["yolo", "rcnn"])
def test_predict_at_a_hard_ratio_sends_that_share_of_the_calibration_images(family, tiny_data, tmp_path):
    """At imgsz 96 the validator pads the tiny 96-px images to 128-px batches; predict does not: scores must agree."""
    import yaml

    from dydet.data.synthetic import load_difficulty

    if family == "rcnn":
        from conftest import light_yaml

        model = DynamicYOLO(str(light_yaml(tmp_path)))
    else:
        model = DynamicYOLO("dy-yolo11n.yaml")
    saturated(model.model)
    model.overrides["data"] = str(tiny_data)
    calibration = model.calibrate(data=str(tiny_data), imgsz=96, batch=4, project=str(tmp_path), name="cal")
    info = yaml.safe_load(tiny_data.read_text())
    files = sorted((Path(info["path"]) / info["val"]).glob("*.*"))
    assert len(files) == len(load_difficulty(tiny_data, "val")) == calibration["n_images"] == 12
    results = model.predict([str(f) for f in files], imgsz=96, threshold=0.0, verbose=False)
    predicted = sorted(r.score for r in results)
    assert predicted == pytest.approx(calibration["scores"], abs=1e-4)  # one preprocessing path
    for p in (0.25, 0.5, 0.75):
        hard = sum(r.route == "hard" for r in model.predict([str(f) for f in files], imgsz=96, hard_ratio=p))
        assert abs(hard - round(p * len(files))) <= 1
    assert 0.35 <= np.mean(np.asarray(predicted) < 0.5) <= 0.65  # centered: a raw threshold 0.5 splits about evenly
