"""The speed benchmark: behaviour, not timing (speeds are never asserted)."""

import math

import pytest
import torch

from dydet.engine.benchmarks import (
    EASY,
    HARD,
    ROUTED_EASY,
    BenchmarkResult,
    benchmark_images,
    benchmark_speed,
    default_baselines,
    dynamic_latency_by_ratio,
    parse_baselines,
    run_benchmark,
    sequence_scores,
    split_thresholds,
)
from dydet.nn.tasks import DynamicDetectionModel
from dydet.routing import RoutedRunner

FAST = {"imgsz": 64, "reps": 2, "warmup": 1, "progress": False}


def spread_model(nc: int = 3, cfg: str = "dy-yolo11n.yaml", std: float = 2.0) -> DynamicDetectionModel:
    """A model whose router spreads the benchmark images' scores (std: large enough to spread, small enough not to
    saturate the sigmoid into ties)."""
    torch.manual_seed(0)
    model = DynamicDetectionModel(cfg, nc=nc, verbose=False).eval()
    torch.nn.init.normal_(model.router.reduce.weight, std=std)
    torch.nn.init.normal_(model.router.score.weight, std=std)
    return model


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> tuple[BenchmarkResult, DynamicDetectionModel, dict]:
    model = DynamicDetectionModel("dy-yolo11n.yaml", nc=3, verbose=False)  # unfused, training mode
    torch.nn.init.zeros_(model.router.score.weight)  # every image gets the same score: no threshold can split them
    before = {k: v.clone() for k, v in model.state_dict().items()}
    save_dir = tmp_path_factory.mktemp("speed")
    r = benchmark_speed(
        model, hard_ratios=(0.25, 0.5, 0.75), batch=4, seq=4, save_dir=save_dir, command="pytest", **FAST
    )
    return r, model, before


def test_every_row_and_ratio(result):
    r, _, _ = result
    names = {row["name"] for row in r.rows}
    assert names == {
        EASY,
        HARD,
        ROUTED_EASY,
        "yolo11n",
        "yolo11s",
        "dynamic p=0.25",
        "dynamic p=0.50",
        "dynamic p=0.75",
    }
    assert r.modes == ["eager"]  # CPU: no CUDA graphs
    assert r.meta["static_base"] == "yolo11n" and r.meta["baselines"] == ["yolo11n", "yolo11s"]
    assert r.meta["precision"] == "fp32" and r.meta["router_spread"]
    for row in r.rows:
        assert row["bs1_ms"] > 0 and row["batch_ms"] > 0 and row["gflops"] > 0
        assert math.isclose(row["batch_img_s"], 4e3 / row["batch_ms"])
    # per-route GFLOPs: the easy route costs the static base, the hard route more, the dynamic model in between
    assert math.isclose(r.row(EASY)["gflops"], r.row("yolo11n")["gflops"], rel_tol=1e-6)
    g = [r.row(f"dynamic p={p:.2f}")["gflops"] for p in (0.25, 0.5, 0.75)]
    assert r.row(EASY)["gflops"] < g[0] < g[1] < g[2] < r.row(HARD)["gflops"]
    keys = [x["key"] for x in r.ratios]
    for key in ("easy/base bs1", "easy/base batch", "easy/base gflops", "router bs1", "router batch", "tput p0.5/hard"):
        assert keys.count(key) == 1
    assert keys.count("dyn/mix bs1") == 3 and keys.count("dyn/mix batch") == 3
    refs = {x["key"]: x["reference"] for x in r.ratios}
    assert refs["easy/base bs1"] == 1.0 and refs["dyn/mix bs1"] == 1.0 and refs["router batch"] == 1.0
    assert refs["hard/easy bs1"] == pytest.approx(r.row(HARD)["gflops"] / r.row(EASY)["gflops"])
    assert 1.0 < refs["tput p0.5/hard"] < 2.0  # the linear mix at p=0.5 is faster than all-hard
    assert all(set(x) == {"mode", "key", "name", "value", "reference"} for x in r.ratios)  # no internal verdicts
    assert math.isclose(r.ratio("easy route / yolo11n, GFLOPs"), 1.0, rel_tol=1e-6)
    assert set(dynamic_latency_by_ratio(r)) == {0.25, 0.5, 0.75}


def test_exact_split_achieved(result):
    r, _, _ = result
    for p in (0.25, 0.5, 0.75):
        row = r.row(f"dynamic p={p:.2f}")
        assert row["hard_ratio"] == p and row["p_bs1"] == p and row["p_batch"] == p  # 4 images, 4-batch: exact
        mix = (1 - p) * r.row(EASY)["bs1_ms"] + p * r.row(HARD)["bs1_ms"]
        assert math.isclose(row["mix_bs1_ms"], mix) and math.isclose(row["dyn_over_mix_bs1"], row["bs1_ms"] / mix)


def test_caller_model_untouched(result):
    _, model, before = result
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the router was spread on a copy, nothing fused
    assert not model.router.score.weight.any()
    assert model.training and not model.is_fused()


def test_files_written(result):
    r, _, _ = result
    assert set(r.files) == {"csv", "md", "png"}
    assert all(p.is_file() and p.stat().st_size > 0 for p in r.files.values())
    lines = r.files["csv"].read_text().splitlines()
    assert len(lines) == 1 + len(r.rows) and lines[0].startswith("mode,name,kind,gflops,bs1_ms")
    md = r.files["md"].read_text()
    assert "Command: `pytest`" in md and "| eager | dynamic p=0.50 |" in md and "| reference |" in md
    assert "dynamic p=0.50" in r.table() and r.markdown().strip() == md.strip()
    assert "MISSED" not in md + r.table() and " OK" not in md + r.table()


@pytest.mark.parametrize("p", [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0])
def test_thresholds_send_exact_share_hard(p):
    model = spread_model()
    x = benchmark_images(10, 64)
    with torch.inference_mode():
        ((_, t, k),) = split_thresholds(sequence_scores(model, x, batched=True), [p])
        _, routing = model.routed(x, t)
        assert k == round(p * 10) and int(routing.hard.sum()) == k
        ((_, t1, k1),) = split_thresholds(sequence_scores(model, x, batched=False), [p])
        hard = 0
        for im in x:
            hard += int(model.routed(im[None], t1)[1].hard.sum())
        assert hard == k1 == k


def test_default_and_parsed_baselines():
    assert default_baselines(DynamicDetectionModel("dy-yolo11n.yaml", verbose=False)) == (
        "yolo11n.yaml",
        "yolo11s.yaml",
    )
    assert default_baselines(DynamicDetectionModel("dy-yolov8x.yaml", verbose=False)) == ("yolov8x.yaml",)
    assert parse_baselines("yolo11n.yaml, yolo11s.yaml") == ["yolo11n.yaml", "yolo11s.yaml"]
    assert parse_baselines("none") == [] and parse_baselines(None) == [] and parse_baselines(["a.pt"]) == ["a.pt"]


def test_run_benchmark_cli_arguments(tmp_path, captured):
    model = spread_model()
    r = run_benchmark(
        model,
        baselines="none",
        hard_ratios=[0.5],
        imgsz=64,
        batch=2,
        reps=1,
        seq=2,
        device="cpu",
        project=str(tmp_path),
        name="bench",
        verbose=False,
        format="-",
    )
    assert r.files["md"].parent == tmp_path / "bench"
    assert r.meta["baselines"] == [] and r.meta["static_base"] is None
    assert {x["key"] for x in r.ratios} == {"router bs1", "router batch", "hard/easy bs1", "dyn/mix bs1"} | {
        "dyn/mix batch",
        "tput p0.5/hard",
    }
    ignored = [line for line in captured if "ignores" in line]  # only what was passed: no default it filled in
    assert len(ignored) == 1 and ignored[0].endswith("dydet benchmark ignores format"), ignored


def test_images_from_dataset(tiny_data):
    x = benchmark_images(5, 64, source=tiny_data)
    assert x.shape == (5, 3, 64, 64) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert not torch.equal(x[0], x[1])


def test_cpu_refuses_gpu_options():
    with pytest.raises(ValueError, match="half"):
        benchmark_speed(spread_model(), baselines="none", half=True, **FAST)
    with pytest.raises(ValueError, match="cuda_graphs"):
        benchmark_speed(spread_model(), baselines="none", cuda_graphs=True, **FAST)
    with pytest.raises(ValueError, match="hard_ratios"):
        benchmark_speed(spread_model(), baselines="none", hard_ratios=(1.5,), **FAST)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graphs_match_eager():
    from dydet.utils.cuda_graphs import DynamicModelGraphs

    model = spread_model().fuse(verbose=False).cuda().half()  # fuse in fp32 on the CPU, as benchmark_speed does
    x = benchmark_images(8, 64).cuda().half()
    with torch.no_grad():
        ((_, t, k),) = split_thresholds(sequence_scores(model, x, batched=True), [0.5])
        graphs = DynamicModelGraphs(model, x)
        for route in ("easy", "hard"):
            torch.testing.assert_close(graphs.forced(route, x)[0], model(x, route=route)[0], atol=2e-2, rtol=2e-2)
        (routed, _), graph_routing = graphs.routed(x, t)
        routed = routed.clone()
        (eager, _), routing = model.routed(x, t)
        assert int(graph_routing.hard.sum()) == k == int(routing.hard.sum())
        torch.testing.assert_close(routed, eager, atol=2e-2, rtol=2e-2)


# ------------------------------------------------------------------------------------- benchmarks/accuracy_vs_cost.py
def load_avc():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "accuracy_vs_cost.py"
    spec = importlib.util.spec_from_file_location("accuracy_vs_cost", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_accuracy_vs_cost_tables_and_plot(result, tmp_path):
    avc = load_avc()
    r, _, _ = result
    tradeoff = [
        {
            "hard_ratio": p,
            "GFLOPs": 0.0,
            "mAP50-95": 0.3 + 0.1 * p,
            "mAP50": 0.5 + 0.1 * p,
            "random_mAP50-95": 0.3 + 0.05 * p,
            "random_mAP50": 0.5 + 0.05 * p,
        }
        for p in (0.25, 0.5, 0.75)
    ]
    rows = avc.collect(tradeoff, {"yolo11n": (0.31, 0.5), "yolo11s": (0.36, 0.55)}, r, "dy-yolo11n")
    assert [x["curve"] for x in rows].count("router") == 3 and [x["curve"] for x in rows].count("random") == 3
    router = {x["hard_ratio"]: x for x in rows if x["curve"] == "router"}
    assert router[0.5]["gflops"] == r.row("dynamic p=0.50")["gflops"]
    assert router[0.5]["latency_ms"] == r.row("dynamic p=0.50")["bs1_ms"]
    static = {x["model"]: x for x in rows if x["curve"] == "static"}
    assert static["yolo11s"]["latency_ms"] == r.row("yolo11s")["bs1_ms"] and static["yolo11s"]["mAP50-95"] == 0.36
    csv_path, md_path = avc.write_tables(rows, tmp_path, "header")
    assert (
        len(csv_path.read_text().splitlines()) == 1 + len(rows)
        and "| dy-yolo11n | random | 0.5 |" in md_path.read_text()
    )
    png = avc.plot_accuracy_vs_cost(rows, tmp_path / "a.png", "latency, ms")
    assert png.stat().st_size > 0


def test_accuracy_vs_cost_static_line_margins():
    avc = load_avc()
    rows = [
        {"model": "n", "curve": "static", "hard_ratio": None, "gflops": 1.0, "latency_ms": 10.0, "mAP50-95": 0.30},
        {"model": "s", "curve": "static", "hard_ratio": None, "gflops": 3.0, "latency_ms": 30.0, "mAP50-95": 0.50},
    ]
    for p, g, m in ((0.0, 1.0, 0.31), (0.5, 1.5, 0.33), (1.0, 2.0, 0.41), (2.0, 3.5, 0.6)):  # the last is out of range
        rows.append(
            {"model": "dy", "curve": "router", "hard_ratio": p, "gflops": g, "latency_ms": 10 * g, "mAP50-95": m}
        )
        rows.append(
            {"model": "dy", "curve": "random", "hard_ratio": p, "gflops": g, "latency_ms": 10 * g, "mAP50-95": 0}
        )
    margins = avc.static_line_margins(rows)
    assert [x["hard_ratio"] for x in margins] == [0.0, 0.5, 1.0]
    assert [round(x["line"], 6) for x in margins] == [0.30, 0.35, 0.40]
    assert [round(x["margin"], 6) for x in margins] == [0.01, -0.02, 0.01]
    assert avc.static_line_margins(rows[1:]) == []  # one static model: no line


def test_accuracy_vs_cost_recipe_is_shared():
    avc = load_avc()
    args = avc.parse_args(["--project", "/tmp/x", "--epochs", "3"])
    train = avc.recipe(args, "/data.yaml", "/tmp/x")
    assert train["epochs"] == 3 and train["seed"] == 0 and train["optimizer"] == "AdamW" and train["deterministic"]
    with_nbs = avc.recipe(avc.parse_args(["--project", "/x", "--nbs", "16"]), "/d", "/x")
    assert "nbs" not in train and with_nbs["nbs"] == 16
    assert args.static.split(",") == ["yolo11n.yaml", "yolo11s.yaml"] and args.dy == "dy-yolo11n.yaml"


@pytest.mark.slow
def test_accuracy_vs_cost_smoke(tmp_path):
    avc = load_avc()
    argv = ["--epochs", "1", "--imgsz", "64", "--n-train", "32", "--n-val", "16", "--stage2-epochs", "1"]
    out = avc.main([*argv, "--reps", "1", "--batch", "8", "--workers", "0", "--project", str(tmp_path)])
    assert all(out[k].is_file() for k in ("csv", "md", "png"))
    rows = out["csv"].read_text().splitlines()
    assert len(rows) == 1 + 2 + 2 * 11  # two static models, router and random curves over 11 hard ratios


def _copy_into(dst, src):
    if isinstance(dst, torch.Tensor):
        dst.copy_(src)
    elif isinstance(dst, dict):
        for k in dst:
            _copy_into(dst[k], src[k])
    elif isinstance(dst, (list, tuple)):
        for a, b in zip(dst, src):
            _copy_into(a, b)


class ReplayEmulator:
    """CPU stand-in for a CUDA graph: a replay recomputes the captured call and writes it into the same tensors."""

    def __init__(self, fn, out):
        self.fn, self.out = fn, out

    def replay(self):
        _copy_into(self.out, self.fn())


@pytest.mark.parametrize("cfg, std", [("dy-yolo11n.yaml", 2.0), ("dy-yolo26n.yaml", 0.5)])  # NMS and end-to-end heads
def test_graph_runners_logic_on_cpu(monkeypatch, cfg, std):
    """The CUDA-graph runners' buffers, subset copies and merging, checked on the CPU with emulated graphs."""
    import dydet.utils.cuda_graphs as cg

    def fake_capture(fn, warmup=3):
        out = fn()
        return ReplayEmulator(fn, out), out

    monkeypatch.setattr(cg, "capture", fake_capture)
    assert issubclass(cg.DynamicModelGraphs, RoutedRunner) and "routed" not in vars(cg.DynamicModelGraphs)  # the one
    model = spread_model(cfg=cfg, std=std).fuse(verbose=False)
    x = benchmark_images(8, 64)
    with torch.no_grad():
        graphs, static = cg.DynamicModelGraphs(model, torch.zeros_like(x)), cg.StaticModelGraph(model, x[:1])
        for route in ("easy", "hard"):
            torch.testing.assert_close(graphs.forced(route, x)[0], model(x, route=route)[0])
        for p in (0.0, 0.25, 0.5, 0.75, 1.0):
            ((_, t, k),) = split_thresholds(sequence_scores(model, x, batched=True), [p])
            (routed, _), graph_routing = graphs.routed(x, t)
            routed = routed.clone()
            (eager, _), routing = model.routed(x, t)
            assert int(graph_routing.hard.sum()) == k == int(routing.hard.sum())
            assert torch.equal(graph_routing.hard, routing.hard)
            torch.testing.assert_close(routed, eager)
        assert static(x[:1]) is static.out


def test_threads_set_for_the_run_and_restored():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        r = benchmark_speed(spread_model(), baselines="none", hard_ratios=(0.5,), batch=2, seq=2, threads=1, **FAST)
        assert r.meta["threads"] == 1 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)


# ------------------------------------------------------------------------------------------ benchmarks/demo_seeds.py
def load_demo_seeds():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "demo_seeds.py"
    spec = importlib.util.spec_from_file_location("demo_seeds", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_seeds_spearman_ranks_with_ties():
    ds = load_demo_seeds()
    x = [1.0, 2.0, 2.0, 3.0, 5.0]
    assert ds.spearman(x, [10, 20, 20, 30, 40]) == pytest.approx(1.0)
    assert ds.spearman(x, [5, 4, 4, 2, 0]) == pytest.approx(-1.0)
    assert ds.spearman([0.2, 0.9, 0.4, 0.1], [2, 3, 4, 1]) == pytest.approx(0.8)  # 1 - 6 * 2 / (4 * 15)


def test_demo_seeds_tradeoff_figures_and_table(tmp_path):
    import argparse
    import csv

    ds = load_demo_seeds()
    path = tmp_path / "tradeoff.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, ["hard_ratio", "mAP50-95", "mAP50", "random_mAP50-95", "oracle_mAP50-95"])
        w.writeheader()
        for p in (0.0, 0.3, 0.5, 0.7, 1.0):
            w.writerow(
                {
                    "hard_ratio": p,
                    "mAP50-95": 0.40 + 0.06 * p + (0.01 if 0 < p < 1 else 0),
                    "mAP50": 0.6 + 0.05 * p,
                    "random_mAP50-95": 0.40 + 0.06 * p,
                    "oracle_mAP50-95": 0.40 + 0.06 * p + (0.02 if 0 < p < 1 else 0),
                }
            )
    fig = ds.tradeoff_figures(path)
    assert fig["easy_mAP50"] == pytest.approx(0.6) and fig["hard_mAP50-95"] == pytest.approx(0.46)
    assert fig["hard-easy"] == pytest.approx(0.06) and fig["router-random@0.5"] == pytest.approx(0.01)
    assert fig["oracle_share@0.3"] == pytest.approx(0.5) and fig["oracle_share@0.7"] == pytest.approx(0.5)
    rows = [{"seed": s, **fig, "spearman_val": -0.5, "hard_share_val": 0.5, "hard_share_train": 0.4} for s in (0, 1)]
    rows = [{**r, "wall_s": 500.0, "cpu_s": 800.0 + r["seed"]} for r in rows]
    rows[1]["hard-easy"] = 0.01  # one seed misses the hard route's target
    md = ds.write([*rows, *ds.summary_rows(rows)], argparse.Namespace(project=tmp_path))
    assert "| min |" in md and "| mean |" in md and "hard-easy >= 0.03 on every seed: NOT met" in md
    assert "spearman_val <= -0.3 on every seed: met" in md
    with open(tmp_path / "demo_seeds.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["seed"] for r in table] == ["0", "1", "mean", "min"] and float(table[3]["cpu_s"]) == 800.0
