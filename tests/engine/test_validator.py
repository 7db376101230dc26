"""The per-route validator's bookkeeping around the stock `DetectionValidator`."""

import pytest

import dydet  # noqa: F401  (offline settings before ultralytics)
from dydet.engine.routing import ROUTES
from dydet.engine.validator import DynamicValidator


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
