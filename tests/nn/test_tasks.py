import pytest
import torch
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils.torch_utils import get_flops

from dydet.nn.checkpoint import load_checkpoint, save_checkpoint
from dydet.nn.tasks import DynamicDetectionModel
from dydet.utils.flops import route_gflops

SCALES = [f"{fam}{s}" for fam in ("yolo11", "yolov8") for s in "nsmlx"]


def tiny_model(nc: int = 3, name: str = "dy-yolo11n.yaml") -> DynamicDetectionModel:
    torch.manual_seed(0)
    model = DynamicDetectionModel(name, nc=nc, verbose=False).eval()
    # spread the random router's scores so that a batch of varied images routes both ways
    torch.nn.init.normal_(model.router.reduce.weight, std=2.0)
    torch.nn.init.normal_(model.router.score.weight, std=2.0)
    return model


def varied_images(n: int = 6, size: int = 64) -> torch.Tensor:
    torch.manual_seed(1)
    gains = torch.linspace(0.1, 1.0, n).view(n, 1, 1, 1)
    return torch.rand(n, 3, size, size) * gains


def mixed_threshold(model: DynamicDetectionModel, x: torch.Tensor) -> float:
    with torch.no_grad():
        s = model.router_scores(x).sort().values
    assert s[0] < s[-1], "router scores do not spread; cannot build a mixed batch"
    k = len(s) // 2
    return float((s[k - 1] + s[k]) / 2)


def modules_in(model: DynamicDetectionModel, layers) -> list[torch.nn.Module]:
    """Modules owned by these layers only (activations such as Conv.default_act are one shared instance)."""
    inside = {m for i in layers for m in model.model[i].modules()}
    outside = {m for i in range(len(model.model)) if i not in layers for m in model.model[i].modules()}
    return list(inside - outside)


def record_calls(modules) -> tuple[list, list]:
    calls, handles = [], []
    for m in modules:
        handles.append(m.register_forward_hook(lambda mod, inp, out: calls.append(mod)))
    return calls, handles


def assert_one_route_runs(model: DynamicDetectionModel, x: torch.Tensor, route: str) -> None:
    """Route a batch all one way (threshold 0: easy, 1: hard) and check, with forward hooks, that no module of the
    other route's layers ran and the taken route's did."""
    other = "hard" if route == "easy" else "easy"
    calls, handles = record_calls(modules_in(model, getattr(model.graph, other)))
    taken_calls, taken_handles = record_calls(modules_in(model, getattr(model.graph, route)))
    try:
        with torch.no_grad():
            _, routing = model.routed(x, 0.0 if route == "easy" else 1.0)
    finally:
        for h in handles + taken_handles:
            h.remove()
    assert routing.routes == [route] * len(x)
    assert calls == [] and taken_calls


@pytest.mark.parametrize("name", SCALES)
def test_every_scale_builds_runs_and_easy_route_costs_the_base(name):
    model = DynamicDetectionModel(f"dy-{name}.yaml", nc=80, verbose=False).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        for route in ("easy", "hard"):
            y, raw = model(x, route=route)
            assert y.shape == (2, 4 + 80, 84)
    easy, base = route_gflops(model, "easy", 640), get_flops(DetectionModel(f"{name}.yaml", verbose=False), 640)
    assert abs(easy - base) / base <= 0.02
    assert route_gflops(model, "hard", 640) > 1.3 * easy


def test_both_heads_get_strides_and_biases():
    model = tiny_model()
    easy, hard = model.heads
    assert easy is not hard
    assert easy.stride.tolist() == hard.stride.tolist() == [8.0, 16.0, 32.0]
    assert torch.equal(model.stride, hard.stride)
    for head in model.heads:  # bias_init ran on both: box biases are 2.0
        assert torch.all(head.cv2[0][-1].bias == 2.0)


def test_training_mode_returns_both_routes_and_scores():
    model = tiny_model().train()
    out = model(varied_images(3))
    assert set(out) == {"easy", "hard", "score"}
    assert out["score"].shape == (3,)
    assert out["easy"]["scores"].shape == out["hard"]["scores"].shape == (3, 3, 84)


def test_mixed_batch_matches_each_image_alone_through_its_route():
    model = tiny_model()
    x = varied_images(6)
    t = mixed_threshold(model, x)
    with torch.no_grad():
        (y, raw), routing = model.routed(x, t)
        routes = routing.routes
        scores = routing.score
        assert set(routes) == {"easy", "hard"}
        assert routes == ["hard" if s < t else "easy" for s in scores.tolist()]
        for i, route in enumerate(routes):
            yi, raw_i = model(x[i : i + 1], route=route)
            torch.testing.assert_close(y[i : i + 1], yi, rtol=1e-4, atol=1e-4)
            for level, feat in enumerate(raw_i["feats"]):
                torch.testing.assert_close(raw["feats"][level][i : i + 1], feat, rtol=1e-4, atol=1e-4)


def test_all_easy_batch_never_runs_the_hard_route():
    assert_one_route_runs(tiny_model(), varied_images(4), "easy")


def test_all_hard_batch_never_runs_the_easy_head():
    assert_one_route_runs(tiny_model(), varied_images(4), "hard")


def test_mixed_batch_runs_each_head_on_its_subset_only():
    model = tiny_model()
    x = varied_images(6)
    t = mixed_threshold(model, x)
    sizes = {}
    handles = [
        head.register_forward_hook(lambda m, inp, out, r=r: sizes.setdefault(r, inp[0][0].shape[0]))
        for r, head in zip(("easy", "hard"), model.heads)
    ]
    with torch.no_grad():
        _, routing = model.routed(x, t)
    n_hard = int(routing.hard.sum())
    assert sizes == {"easy": 6 - n_hard, "hard": n_hard}
    for h in handles:
        h.remove()


def test_router_scores_run_no_head():
    model = tiny_model()
    calls, handles = record_calls(modules_in(model, [*model.graph.easy, *model.graph.hard]))
    with torch.no_grad():
        s = model.router_scores(varied_images(5))
    assert s.shape == (5,) and torch.all((s > 0) & (s < 1))
    assert calls == []
    for h in handles:
        h.remove()


@pytest.mark.parametrize("threshold", [-0.1, 1.5, 7, "high", True])
def test_threshold_out_of_range_is_a_value_error(threshold):
    model = tiny_model()
    with pytest.raises(ValueError, match="threshold"):
        model(varied_images(1), threshold=threshold)


@pytest.mark.parametrize("route", ["medium", "EASY", 1])
def test_unknown_route_is_a_value_error(route):
    model = tiny_model()
    with pytest.raises(ValueError, match="route"):
        model(varied_images(1), route=route)


def test_device_and_dtype_moves_reach_both_heads():
    model = tiny_model().double()
    with torch.no_grad():
        model(varied_images(2).double(), route="easy")
    for head in model.heads:
        assert head.stride.dtype == torch.float64 and head.anchors.dtype == torch.float64


def test_set_head_attr_reaches_both_heads():
    model = tiny_model()
    model.set_head_attr(max_det=7)
    assert [h.max_det for h in model.heads] == [7, 7]


def test_fuse_keeps_both_routes_outputs():
    model = tiny_model()
    x = varied_images(4)
    t = mixed_threshold(model, x)
    with torch.no_grad():
        before = {r: model(x, route=r)[0] for r in ("easy", "hard")}
        mixed = model(x, threshold=t)[0]
        model.fuse(verbose=False)
        assert model.is_fused()
        for r in ("easy", "hard"):
            torch.testing.assert_close(model(x, route=r)[0], before[r], rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(model(x, threshold=t)[0], mixed, rtol=1e-3, atol=1e-3)


def test_route_summary_counts_each_part():
    model = tiny_model()
    s = model.route_summary(320)
    assert s["easy"]["params"] < s["hard"]["params"]
    assert s["router"]["params"] == sum(p.numel() for p in model.router.parameters())
    assert 0 < s["router"]["gflops"] < 0.01 * s["easy"]["gflops"]


def test_state_survives_checkpoint_round_trip(tmp_path):
    model = tiny_model()
    model.threshold = 0.37
    model.calibration = {"scores": [0.1, 0.9]}
    x = varied_images(4)
    t = mixed_threshold(model, x)
    with torch.no_grad():
        ref = model(x, threshold=t)[0]
    path = tmp_path / "dy.pt"
    save_checkpoint({"model": model, "epoch": -1}, path)
    torch.load(path, weights_only=True)  # plain containers and tensors only
    loaded, _ = load_checkpoint(path)
    assert isinstance(loaded, DynamicDetectionModel)
    assert loaded.threshold == 0.37 and loaded.calibration == {"scores": [0.1, 0.9]}
    assert not hasattr(loaded, "routing")  # no per-call state on the model: `routed` returns the record
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x, threshold=t)[0], ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(loaded.router_scores(x), model.router_scores(x))


# ---------------------------------------------------------------- pinned against stock Ultralytics (least override)
def stock_and_dynamic(nc: int = 3) -> tuple[DetectionModel, DynamicDetectionModel]:
    from ultralytics.nn.tasks import yaml_model_load

    torch.manual_seed(0)
    stock = DetectionModel(yaml_model_load("yolo11n.yaml"), nc=nc, verbose=False)
    return stock, DynamicDetectionModel("dy-yolo11n.yaml", nc=nc, verbose=False)


def test_init_sets_what_detection_model_init_sets():
    stock, model = stock_and_dynamic()
    assert model.names == stock.names and model.inplace == stock.inplace
    assert {k: model.yaml[k] for k in ("nc", "channels", "scale")} == {k: stock.yaml[k] for k in ("nc", "channels")} | {
        "scale": "n"
    }
    assert torch.equal(model.stride, stock.stride)
    assert model.training and model.model.training == stock.model.training
    sh = stock.model[-1]
    for head in model.heads:  # both heads get what the stock init gives `model[-1]`: strides, inplace, biases
        assert torch.equal(head.stride, sh.stride) and head.inplace == sh.inplace and head.training
        for mine, theirs in zip([*head.cv2, *head.cv3], [*sh.cv2, *sh.cv3]):
            assert torch.equal(mine[-1].bias, theirs[-1].bias)
    for m in model.modules():  # initialize_weights ran (stock BatchNorm eps/momentum)
        if isinstance(m, torch.nn.BatchNorm2d):
            assert (m.eps, m.momentum) == (1e-3, 0.03)


def test_static_model_is_the_stock_detection_model_for_a_stock_yaml():
    from ultralytics.nn.tasks import yaml_model_load

    from dydet.nn.tasks import StaticDetectionModel

    d = yaml_model_load("yolo11n.yaml")
    torch.manual_seed(0)
    stock = DetectionModel(d, nc=3, verbose=False)
    torch.manual_seed(0)
    static = StaticDetectionModel(d, nc=3, verbose=False)
    assert static.yaml == stock.yaml and static.save == stock.save and static.names == stock.names
    assert torch.equal(static.stride, stock.stride)
    a, b = static.state_dict(), stock.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_hard_route_is_the_stock_forward_over_the_layer_list():
    """`_run` keeps `_predict_once`'s reading/saving rule: the whole layer list run by stock code is the hard route."""
    from ultralytics.nn.tasks import BaseModel

    model, x = tiny_model(), varied_images(2)
    with torch.no_grad():
        stock = BaseModel._predict_once(model, x)
        mine = model(x, route="hard")
    assert torch.equal(stock[0], mine[0])
