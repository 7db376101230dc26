"""The routing core on its own: the rule, the split-run-merge of a batch, the routing value and budgets."""

import dataclasses

import numpy as np
import pytest
import torch

from dydet import cfg
from dydet.routing import (
    Routing,
    RoutingSpec,
    budget_hard_ratio,
    hard_mask,
    hard_ratio_for_threshold,
    resolve_routing,
    route_batch,
    take,
)
from dydet.utils.errors import UsageError

SCORES = [0.9, 0.1, 0.6, 0.3, 0.8, 0.2]  # threshold 0.5: hard at positions 1, 3, 5


def calibration(n: int = 100, device: str = "cpu", precision: str = "fp32") -> dict:
    """A calibration record with n evenly spread scores and known per-route costs."""
    return {
        "scores": ((np.arange(n) + 0.5) / n).tolist(),
        "imgsz": 320,
        "gflops": {"easy": 4.0, "hard": 8.0, "router": 0.01},
        "latency_ms": {"easy": 10.0, "hard": 30.0},
        "device": device,
        "precision": precision,
        "n_images": n,
    }


def test_hard_mask_is_one_rule_for_tensors_and_arrays():
    scores = [0.0, 0.3, 0.5, 0.7, 1.0]
    for make in (torch.tensor, np.array):
        s = make(scores)
        cases = {0.0: [0, 0, 0, 0, 0], 0.5: [1, 1, 0, 0, 0], 0.99: [1, 1, 1, 1, 0], 1.0: [1, 1, 1, 1, 1]}
        for threshold, want in cases.items():
            got = hard_mask(s, threshold)
            assert isinstance(got, type(s)) and got.dtype in (torch.bool, np.bool_)
            assert [int(v) for v in got.tolist()] == want, (make, threshold)  # easy if score >= threshold; 1: all hard


class Tails:
    """Two tails that tag each image with its route and record which batch positions they were called on."""

    def __init__(self, images):
        self.images, self.calls = images, {"easy": [], "hard": []}

    def run(self, route, index):
        self.calls[route].append(None if index is None else index.tolist())
        x = take(self.images, index)
        tag = 1.0 if route == "hard" else -1.0
        if isinstance(x, np.ndarray):
            return x + tag
        return {"y": x + tag, "parts": [x * 0 + tag, (x.sum(1),)]}  # nested dict/list/tuple outputs merge as well


@pytest.mark.parametrize("kind", ["torch", "numpy"])
def test_route_batch_runs_each_tail_on_its_images_and_merges_in_order(kind):
    images = torch.arange(6, dtype=torch.float32)[:, None] * torch.ones(1, 3)  # image i is all i
    scores = torch.tensor(SCORES)
    if kind == "numpy":
        images, scores = images.numpy(), scores.numpy()
    tails = Tails(images)
    out, routing = route_batch(scores, 0.5, lambda i: tails.run("easy", i), lambda i: tails.run("hard", i))
    assert tails.calls == {"easy": [[0, 2, 4]], "hard": [[1, 3, 5]]}  # each tail once, exactly its images
    assert routing.routes == ["easy", "hard", "easy", "hard", "easy", "hard"] and routing.threshold == 0.5
    assert routing.hard_ratio == 0.5 and routing.score.tolist() == pytest.approx(SCORES)
    want = np.array([[i + (1 if i % 2 else -1)] * 3 for i in range(6)], dtype=np.float32)
    y = out if kind == "numpy" else out["y"]
    assert type(y) is type(images) and np.asarray(y).tolist() == want.tolist()  # batch order restored
    if kind == "torch":
        assert out["parts"][0][:, 0].tolist() == [-1, 1, -1, 1, -1, 1]
        assert isinstance(out["parts"][1], tuple) and out["parts"][1][0].tolist() == [3.0 * i for i in range(6)]


@pytest.mark.parametrize("threshold, route", [(0.0, "easy"), (0.05, "easy"), (0.95, "hard"), (1.0, "hard")])
def test_one_route_batch_calls_only_that_tail_once_on_the_whole_batch(threshold, route):
    images = torch.rand(6, 3)
    tails = Tails(images)
    out, routing = route_batch(
        torch.tensor(SCORES), threshold, lambda i: tails.run("easy", i), lambda i: tails.run("hard", i)
    )
    other = "hard" if route == "easy" else "easy"
    assert tails.calls == {route: [None], other: []}
    assert routing.routes == [route] * 6
    torch.testing.assert_close(out["y"], images + (1.0 if route == "hard" else -1.0))


def test_forced_route_needs_no_scores_and_records_none():
    tails = Tails(torch.rand(4, 3))
    _, routing = route_batch(
        None, RoutingSpec.forced("hard"), lambda i: tails.run("easy", i), lambda i: tails.run("hard", i), batch_size=4
    )
    assert tails.calls == {"easy": [], "hard": [None]}
    assert routing == Routing(hard=routing.hard) and routing.routes == ["hard"] * 4 and routing.score is None


def test_routing_spec_is_one_checked_immutable_value():
    spec = RoutingSpec.at(0.25)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.threshold = 0.5
    for bad in (dict(), dict(threshold=0.3, route="easy")):
        with pytest.raises(ValueError, match="exactly one"):
            RoutingSpec(**bad)
    with pytest.raises(ValueError, match=r"threshold=1.5 is out of range \[0, 1\]"):  # default.yaml's entry
        RoutingSpec.at(1.5)
    with pytest.raises(ValueError, match="route='medium' is not one of"):
        RoutingSpec.forced("medium")


def test_resolve_routing_errors_and_plain_values():
    with pytest.raises(ValueError, match="not both"):
        resolve_routing(None, threshold=0.4, hard_ratio=0.5)
    with pytest.raises(ValueError, match="needs a calibrated model"):
        resolve_routing(None, hard_ratio=0.5)
    with pytest.raises(ValueError, match="needs a calibrated model"):
        resolve_routing(None, gflops=5)
    with pytest.raises(ValueError, match="route= or threshold="):
        resolve_routing(None, threshold=0.4, route="easy")
    with pytest.raises(ValueError, match="not several"):
        resolve_routing(calibration(), gflops=5, latency=20)
    assert resolve_routing(None) is None
    assert resolve_routing(None, threshold=0.4) == RoutingSpec(threshold=0.4)
    assert resolve_routing(None, route="hard") == RoutingSpec.forced("hard")


@pytest.mark.parametrize("kind, mid", [("gflops", 6.01), ("latency", 20.0)])
def test_budget_midway_between_the_routes_sends_half_of_the_calibration_split_hard(kind, mid):
    cal = calibration()
    assert budget_hard_ratio(cal, kind, mid) == pytest.approx(0.5)  # Eq. 14: (budget - easy) / (hard - easy)
    spec = resolve_routing(cal, **{kind: mid})
    assert hard_ratio_for_threshold(cal, spec.threshold) == 0.5 == spec.hard_ratio
    assert spec.budget == (kind, mid) and spec.source == kind
    assert spec.cost["gflops"] == pytest.approx(6.01) and spec.cost["latency_ms"] == pytest.approx(20.0)
    # the ends of the range are reachable: all easy, all hard
    easy, hard = (4.01, 8.01) if kind == "gflops" else (10.0, 30.0)
    assert resolve_routing(cal, **{kind: easy}).hard_ratio == 0.0
    assert resolve_routing(cal, **{kind: hard}).hard_ratio == 1.0


def test_a_budget_is_met_on_the_calibration_split_never_exceeded():
    cal = calibration(n=7)
    for budget in np.linspace(4.01, 8.01, 23):
        spec = resolve_routing(cal, gflops=float(budget))
        assert spec.cost["gflops"] <= budget + 1e-9
        assert spec.cost["gflops"] > budget - 4.0 / 7 - 1e-9  # and within one image's step of it


@pytest.mark.parametrize("kind, bad", [("gflops", 3.9), ("gflops", 8.5), ("latency", 5.0), ("latency", 31.0)])
def test_out_of_range_budgets_are_refused_with_the_reachable_range(kind, bad):
    with pytest.raises(ValueError, match=r"out of reach: routing this model costs .* \(all easy\) to .* \(all hard\)"):
        resolve_routing(calibration(), **{kind: bad})


@pytest.mark.parametrize("bad", ["fast", True, float("nan")])
def test_non_numeric_budgets_are_refused(bad):
    with pytest.raises(UsageError, match="gflops=.* must be a number"):  # by check_args, before any rule sees it
        cfg.check_args("predict", {"gflops": bad})


def test_latency_budget_is_refused_on_another_device_or_precision():
    cal = calibration(device="cuda:0", precision="fp16")
    assert resolve_routing(cal, latency=20, device="0", precision="fp16").hard_ratio == 0.5
    with pytest.raises(ValueError, match="measured on cuda:0 at fp16 .* this run is on cpu"):
        resolve_routing(cal, latency=20, device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="this run is fp32"):
        resolve_routing(cal, latency=20, device="cuda:0", precision="fp32")
    assert resolve_routing(cal, gflops=6.01, device="cpu", precision="fp32").hard_ratio == 0.5  # GFLOPs: anywhere
