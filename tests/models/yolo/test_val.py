"""Metric keys of dynamic validation: `(B)` is the routed model at the routing asked for, `(E)` / `(H)` each route."""

import numpy as np
import pytest
from conftest import LogCapture

from dydet import DynamicYOLO
from dydet.models.yolo.val import DynamicValidator
from dydet.routing import ROUTES
from dydet.utils.metrics import DynamicDetMetrics

B_KEYS = ["metrics/precision(B)", "metrics/recall(B)", "metrics/mAP50(B)", "metrics/mAP50-95(B)"]


def _image(correct: bool) -> dict:
    """One image with one class-0 object and one prediction, right (all IoU levels) or wrong."""
    return {
        "tp": np.full((1, 10), correct),
        "conf": np.array([0.9]),
        "pred_cls": np.array([0.0]),
        "target_cls": np.array([0.0]),
        "target_img": np.array([0.0]),
        "im_name": "x.jpg",
    }


def _metrics(scores: list[float], threshold: float | None = None, route: str | None = None) -> DynamicDetMetrics:
    """Metrics whose easy route misses every object and whose hard route finds every one."""
    m = DynamicDetMetrics({0: "a", 1: "b"})
    for route_name, correct in (("easy", False), ("hard", True)):
        m.route = route_name
        for _ in scores:
            m.update_stats(_image(correct))
    m.scores = list(scores)
    m.threshold, m.forced_route = threshold, route
    m.process()
    return m


def test_b_keys_are_the_routed_model_beside_each_route():
    m = _metrics([0.1, 0.2, 0.8, 0.9], threshold=0.5)  # two images hard (found), two easy (missed)
    d = m.results_dict
    for suffix in "BEHR":
        assert f"metrics/mAP50-95({suffix})" in d
    assert d["metrics/recall(E)"] == 0 and d["metrics/recall(H)"] == 1
    assert d["metrics/recall(B)"] == pytest.approx(0.5) and m.box.mr == pytest.approx(0.5)
    assert m.hard_share() == 0.5
    assert list(d)[:4] == B_KEYS and "fitness" in d


@pytest.mark.parametrize(("threshold", "route", "recall"), [(0.0, None, 0.0), (1.0, None, 1.0), (0.5, "hard", 1.0)])
def test_b_follows_threshold_and_forced_route(threshold, route, recall):
    m = _metrics([0.1, 0.2, 0.8, 0.9], threshold=threshold, route=route)
    assert m.results_dict["metrics/recall(B)"] == pytest.approx(recall)
    assert m.box.mr == pytest.approx(recall)


def test_fitness_is_the_routed_models_and_training_keeps_its_criterion():
    from dydet.engine.trainer import checkpoint_fitness

    m = _metrics([0.1, 0.2, 0.8, 0.9], threshold=0.0)  # (B) all easy
    assert m.fitness == pytest.approx(m.box.fitness()) and m.results_dict["fitness"] == pytest.approx(m.fitness)
    assert m.fitness == pytest.approx(m.routes["easy"].box.fitness())
    # best.pt: stage 1 by both routes' mean, stage 2 by the router's rank split, whatever (B) is
    assert checkpoint_fitness(m) == pytest.approx(np.mean([m.routes["easy"].fitness, m.routes["hard"].fitness]))
    m.stage = 2
    assert checkpoint_fitness(m) == pytest.approx(m.split.fitness)


def test_val_reports_routed_b_at_the_calibrated_default_and_per_class_table(full_run, tmp_path):
    model = DynamicYOLO(full_run[0].ckpt_path)
    with LogCapture() as lines:
        metrics = model.val(data="tiny", imgsz=64, batch=8, project=str(tmp_path), plots=False, verbose=True)
    log = "\n".join(lines)
    assert metrics.threshold == pytest.approx(model.model.threshold) and "calibrated default" in metrics.routing_text
    routed = metrics.routed(np.asarray(metrics.scores) < model.model.threshold)
    assert metrics.results_dict["metrics/mAP50-95(B)"] == pytest.approx(routed.box.map)
    assert {f"metrics/mAP50({s})" for s in "BEHR"} <= set(metrics.results_dict)
    assert "Routed model (B): threshold" in log and "Per class, hard route:" in log
    assert sum(line.strip().startswith("circle") for line in log.splitlines()) >= 3  # one per route table
    headers = [line.split()[0] for line in log.splitlines() if "Instances" in line and "mAP50-95)" in line]
    assert headers.count("Class") == 3  # the per-class tables head their first column "Class"


def test_per_class_tables_follow_verbose_and_never_come_between_epochs():
    v = DynamicValidator(args={"data": "unused.yaml", "mode": "val", "verbose": True})
    v.metrics = _metrics([0.1, 0.2, 0.8, 0.9], threshold=0.5)
    v.seen, v.nc, v.names = 4, 2, {0: "a", 1: "b"}
    for verbose, between_epochs, expected in ((True, False, True), (False, False, False), (True, True, False)):
        v.args.verbose, v.training = verbose, between_epochs
        with LogCapture() as lines:
            v.print_results()
        assert any(line.startswith("Per class") for line in lines) is expected
        assert any(line.startswith("Routed model (B)") for line in lines) is not between_epochs


def test_val_forced_route_sets_b(full_run, tmp_path):
    model = DynamicYOLO(full_run[0].ckpt_path)
    metrics = model.val(data="tiny", imgsz=64, batch=8, project=str(tmp_path), plots=False, route="easy")
    assert metrics.results_dict["metrics/mAP50-95(B)"] == metrics.results_dict["metrics/mAP50-95(E)"]
    assert metrics.routing_text == "easy route (forced)"


def test_route_sinks_are_swapped_in_and_restored():
    v = DynamicValidator(args={"data": "unused.yaml", "mode": "val"})
    v.confusion_matrix, v.jdict = "stock matrix", ["stock"]
    v.confusion_matrices = {r: f"{r} matrix" for r in ROUTES}
    v.jdicts = {r: [] for r in ROUTES}
    for route in ROUTES:
        with v._as_route(route):  # what the stock update_metrics writes into, per route
            assert (v.metrics.route, v.confusion_matrix) == (route, f"{route} matrix")
            v.jdict.append(route)
        assert (v.metrics.route, v.confusion_matrix, v.jdict) == ("easy", "stock matrix", ["stock"])
    assert v.jdicts == {"easy": ["easy"], "hard": ["hard"]}
    with pytest.raises(RuntimeError), v._as_route("hard"):
        raise RuntimeError
    assert (v.metrics.route, v.confusion_matrix) == ("easy", "stock matrix")
