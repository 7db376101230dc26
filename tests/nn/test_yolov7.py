"""Dy-YOLOv7 / -X / -W6 / -tiny: wiring, routing and costs against the paper's figures (docs/BENCHMARKS.md §7).

Fast tests use the YAMLs at a small `width_multiple` (same graph, narrow layers); the full-size cost table is slow.
"""

import pytest
import torch
from ultralytics.nn.modules import CBFuse, CBLinear, Detect

import dydet  # noqa: F401  (offline settings before ultralytics)
from dydet.nn.builder import build_dual_graph, load_model_yaml
from dydet.nn.tasks import DynamicDetectionModel, StaticDetectionModel
from dydet.utils.flops import route_gflops, static_gflops

from .test_tasks import assert_one_route_runs, mixed_threshold, modules_in, varied_images

FAMILY = ("yolov7-tiny", "yolov7", "yolov7x", "yolov7-w6")


def narrow(name: str, width: float = 0.125, dynamic: bool = True) -> dict:
    d = load_model_yaml(f"{'dy-' if dynamic else ''}{name}.yaml", dynamic=dynamic)
    d.update(width_multiple=width, nc=3)
    return d


def narrow_dynamic(name: str) -> DynamicDetectionModel:
    torch.manual_seed(0)
    model = DynamicDetectionModel(narrow(name), verbose=False).eval()
    torch.nn.init.normal_(model.router.reduce.weight, std=2.0)  # spread the random router's scores
    torch.nn.init.normal_(model.router.score.weight, std=2.0)
    return model


def test_dynamic_yamls_repeat_their_static_model_exactly():
    for name in FAMILY:
        dyn, static = load_model_yaml(f"dy-{name}.yaml"), load_model_yaml(f"{name}.yaml", dynamic=False)
        assert dyn["backbone"] == static["backbone"] and dyn["head"] == static["head"]
        assert dyn["dynamic"]["base"] == name and dyn["family"] == static["family"] == "yolov7"
        assert dyn["scale"] is None  # 'yolov7x' is a model name, not scale x


@pytest.mark.parametrize(
    ("name", "router", "fused_layers", "chunks"),
    [
        ("yolov7", (2, 11, 24, 37, 50), (1, 3, 16, 29, 42), [64, 128, 256, 512, 1024]),
        ("yolov7x", (2, 13, 28, 43, 58), (1, 3, 18, 33, 48), [80, 160, 320, 640, 1280]),
        ("yolov7-w6", (1, 10, 19, 28, 37, 46), (2, 11, 20, 29, 38), [128, 256, 512, 768, 1024]),
        ("yolov7-tiny", (0, 7, 14, 21, 28), (0, 1, 8, 15, 22), [32, 64, 64, 128, 256]),
    ],
)
def test_wiring_follows_the_dynamic_section(name, router, fused_layers, chunks):
    d = load_model_yaml(f"dy-{name}.yaml")
    expanded, g = build_dual_graph(d)
    rows, nb = expanded["backbone"], len(d["backbone"])
    assert g.stages == tuple(1 + j for j in router)
    # CBLinear tap k emits one chunk per B2 level <= k, widths = the fuse-point layers' tracked widths
    assert [rows[t][2] for t in g.taps] == ["CBLinear"] * 5
    assert [rows[t][3][0] for t in g.taps] == [chunks[: k + 1] for k in range(5)]
    taps = d["dynamic"].get("taps", d["dynamic"].get("stages"))
    assert [rows[t][0] for t in g.taps] == [1 + j for j in taps]
    # level k's CBFuse follows B2's copy of fuse_after[k] and sums the chunks of every tap >= k
    b2 = {base: hard for base, _, hard in g.copies if base < nb}
    for k, (fuse, base) in enumerate(zip(g.fuses, fused_layers)):
        assert rows[fuse][2] == "CBFuse" and fuse == b2[base] + 1
        assert rows[fuse][0] == [*g.taps[k:], -1] and rows[fuse][3] == [[k] * (5 - k)]


def crossing_fuse() -> dict:
    """dy-yolov7-tiny fused after layer 3, inside an ELAN block whose Concat reads back past it (-4 from layer 6)."""
    d = load_model_yaml("dy-yolov7-tiny.yaml")
    d["dynamic"] = {"taps": [0, 7, 14, 21, 28], "fuse_after": [0, 3, 8, 15, 22]}
    return d


@pytest.mark.parametrize("name", [*FAMILY, "crossing-fuse"])
def test_b2_reads_the_same_layers_as_b1_despite_inserted_fuses(name):
    """Relative `from` indices (-2, -3, ...) must not be shifted by the CBFuse rows inserted into B2."""
    d = crossing_fuse() if name == "crossing-fuse" else load_model_yaml(f"dy-{name}.yaml")
    expanded, g = build_dual_graph(d)
    rows, nb, fuses = expanded["backbone"], len(d["backbone"]), set(g.fuses)
    b1 = {base: easy for base, easy, _ in g.copies}
    b2 = {base: hard for base, _, hard in g.copies}
    out2 = {j: b2[j] + 1 if b2[j] + 1 in fuses else b2[j] for j in range(nb)}  # B2 layer j's (fused) output

    def absolute(f, i):
        return [absolute(x, i)[0] for x in f] if isinstance(f, list) else [i + f if f < 0 else f]

    for j in range(1, nb):
        src1 = absolute(rows[b1[j]][0], b1[j])
        src2 = absolute(rows[b2[j]][0], b2[j])
        assert src2 == [out2[s - 1] for s in src1], (name, j)


def test_wiring_lists_are_checked():
    d = load_model_yaml("dy-yolov7.yaml")
    d["dynamic"]["fuse_after"] = [1, 3, 16, 29]
    with pytest.raises(ValueError, match="one layer per level"):
        build_dual_graph(d)
    d["dynamic"] = {"taps": [2, 11]}
    with pytest.raises(ValueError, match="'taps' and 'fuse_after'"):
        build_dual_graph(d)
    d["dynamic"] = {"taps": [11, 2], "fuse_after": [1, 3]}
    with pytest.raises(ValueError, match="dynamic.taps must be strictly increasing"):
        build_dual_graph(d)


@pytest.mark.parametrize("name", FAMILY)
def test_every_model_builds_runs_and_the_easy_route_costs_the_static_model(name):
    torch.manual_seed(0)
    dyn = DynamicDetectionModel(narrow(name), verbose=False).eval()
    static = StaticDetectionModel(narrow(name, dynamic=False), verbose=False).eval()
    levels = 4 if name.endswith("w6") else 3
    assert dyn.stride.tolist() == static.stride.tolist() == [8.0, 16.0, 32.0, 64.0][:levels]
    assert all(type(h) is Detect and not h.legacy for h in (*dyn.heads, static.model[-1]))
    x = torch.rand(2, 3, 128, 128)
    anchors = sum((128 // s) ** 2 for s in (8, 16, 32, 64)[:levels])
    with torch.no_grad():
        for route in ("easy", "hard"):
            assert dyn(x, route=route)[0].shape == (2, 4 + 3, anchors)
        assert static(x)[0].shape == (2, 4 + 3, anchors)
    assert route_gflops(dyn, "easy", 256) == pytest.approx(static_gflops(static, 256), rel=1e-9)


@pytest.mark.parametrize("name", ["yolov7", "yolov7-w6"])
def test_mixed_batch_matches_each_image_alone_through_its_route(name):
    model = narrow_dynamic(name)
    x = varied_images(6, 128)
    t = mixed_threshold(model, x)
    with torch.no_grad():
        (y, _), routing = model.routed(x, t)
        routes = routing.routes
        assert set(routes) == {"easy", "hard"}
        for i, route in enumerate(routes):
            torch.testing.assert_close(y[i : i + 1], model(x[i : i + 1], route=route)[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["yolov7", "yolov7-w6"])
def test_all_easy_batch_runs_no_b2_or_h2_module(name):
    model = narrow_dynamic(name)
    hard_modules = modules_in(model, model.graph.hard)
    assert any(isinstance(m, (CBLinear, CBFuse)) for m in hard_modules)
    assert sum(isinstance(m, Detect) for m in hard_modules) == 1
    assert_one_route_runs(model, varied_images(4, 128), "easy")  # hooks on exactly these hard_modules


def test_pretrained_static_checkpoint_makes_both_routes_equal_it(tmp_path):
    torch.manual_seed(0)
    static = StaticDetectionModel(narrow("yolov7", dynamic=False), verbose=False)
    for m in static.modules():  # non-trivial BN statistics, as in a trained model
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "yolov7.pt"
    torch.save({"model": static}, path)
    dyn = DynamicDetectionModel(narrow("yolov7"), verbose=False)
    dyn.load(torch.load(path, weights_only=False), verbose=False)
    dyn.eval(), static.eval()
    x = varied_images(2, 128)
    with torch.no_grad():
        want = static(x)[0]
        for route in ("easy", "hard"):
            torch.testing.assert_close(dyn(x, route=route)[0], want, rtol=1e-4, atol=1e-4)
    assert all(not m.conv.weight.any() for m in dyn.model if isinstance(m, CBLinear))


def test_checkpoint_round_trip_keeps_the_new_modules(tmp_path):
    from ultralytics.nn.tasks import load_checkpoint

    model = narrow_dynamic("yolov7-w6")
    x = varied_images(2, 128)
    with torch.no_grad():
        ref = model(x, route="hard")[0]
    torch.save({"model": model}, tmp_path / "dy.pt")
    loaded, _ = load_checkpoint(tmp_path / "dy.pt")
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x, route="hard")[0], ref)


def test_fuse_keeps_routes_with_repconv():
    model = narrow_dynamic("yolov7")
    x = varied_images(2, 128)
    with torch.no_grad():
        before = {r: model(x, route=r)[0] for r in ("easy", "hard")}
        model.fuse(verbose=False)
        for r in ("easy", "hard"):
            torch.testing.assert_close(model(x, route=r)[0], before[r], rtol=1e-3, atol=1e-3)


# ---------------------------------------------------------------------------------------------- the paper's figures
# head variant (b), docs/BENCHMARKS.md §7: easy / hard GFLOPs with the YOLO11-style Detect head, router parameters (M).
TARGETS = {
    "yolov7": (640, 110.2, 187.2, 2.08),
    "yolov7x": (640, 198.8, 316.8, 3.24),
    "yolov7-w6": (1280, 382.2, 623.8, 1.89),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TARGETS))
def test_route_costs_match_the_paper_with_the_yolo11_head(name):
    imgsz, easy, hard, router = TARGETS[name]
    dyn = DynamicDetectionModel(f"dy-{name}.yaml", verbose=False).eval().fuse(verbose=False)
    s = dyn.route_summary(imgsz)
    assert s["easy"]["gflops"] == pytest.approx(easy, rel=0.01)
    assert s["hard"]["gflops"] == pytest.approx(hard, rel=0.01)
    assert s["router"]["params"] / 1e6 == pytest.approx(router, rel=0.01)
    static = StaticDetectionModel(f"{name}.yaml", verbose=False).eval().fuse(verbose=False)
    assert s["easy"]["gflops"] == static_gflops(static, imgsz)
    assert s["easy"]["params"] == sum(p.numel() for p in static.parameters())


def test_router_cost_does_not_grow_with_the_image():
    model = narrow_dynamic("yolov7-w6")
    small, large = route_gflops(model, "router", 256), route_gflops(model, "router", 1280)
    router_macs = sum(p.numel() for p in model.router.parameters())  # 1x1 convs on pooled inputs: ~1 MAC per weight
    assert small == large == pytest.approx(2 * router_macs / 1e9, rel=0.01)
