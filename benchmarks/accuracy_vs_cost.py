"""Accuracy against cost: a Dy model and the static models it competes with, trained the same way, on one plot.

Generates the embedded benchmark dataset (`make_dataset("bench", ...)`), trains the Dy model (stage 1, stage 2 and
calibration, `DynamicYOLO.train`) and every static model (`ultralytics.YOLO(yaml).train`) with the same recipe (data,
epochs, image size, batch, optimizer, learning rate, seed; stage 2 adds `--stage2-epochs` of router-only training on
top), validates them all, measures every model's batch-1 latency side by side in one interleaved run
(`dydet.engine.benchmarks.benchmark_speed`, on the validation images), and draws mAP50-95 against GFLOPs and against
measured latency: the static models as points, the Dy model's router curve over hard ratios 0, 0.1, ..., 1 (its
trade-off table from one validation run) and its random-routing curve (same cost, random images sent hard).

Writes into --project: accuracy_vs_cost.csv, accuracy_vs_cost.md, accuracy_vs_cost.png, speed/ (the latency run),
and one training folder per model.

Usage (the full comparison: minutes on a GPU with --device 0, an estimated 5-6 hours on a 2-core CPU):
    python benchmarks/accuracy_vs_cost.py --dy dy-yolo11n.yaml --static yolo11n.yaml,yolo11s.yaml \
        --epochs 30 --imgsz 256 --n-train 3000 --n-val 1000 --project $PWD/runs/accuracy_vs_cost

CPU-size comparison (an estimated 40 minutes on 2 cores):
    python benchmarks/accuracy_vs_cost.py --epochs 20 --imgsz 160 --n-train 1000 --n-val 300 \
        --project $PWD/runs/accuracy_vs_cost_cpu

Smoke run (about 2 minutes on 2 CPU cores):
    python benchmarks/accuracy_vs_cost.py --epochs 1 --imgsz 96 --n-train 64 --n-val 32 --stage2-epochs 1 \
        --reps 3 --project /tmp/avc-smoke

Re-plot from trained weights without training: --dy-weights DY.pt --static-weights A.pt,B.pt. Static models an
earlier run of the same recipe trained and validated: --static-maps 0.3647/0.4960,0.5122/0.6683 (mAP50-95/mAP50 of
each --static model; their costs and latency are measured on the models built from the YAMLs).
"""

from __future__ import annotations

import argparse
import csv
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from dydet.utils.offline import setup_offline

setup_offline()  # first: Ultralytics reads its offline settings once, when it is imported

from dydet import DynamicYOLO
from dydet.data.synthetic import PRESETS, make_dataset
from dydet.engine.benchmarks import benchmark_speed

FIELDS = ("model", "curve", "hard_ratio", "gflops", "latency_ms", "mAP50-95", "mAP50")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--preset",
        default="bench",
        choices=("bench", "demo"),
        help="embedded dataset; demo: its fixed data (seed 0, 1152/512 images, 128 px; --n-train/--n-val ignored)",
    )
    ap.add_argument("--dy", default="dy-yolo11n.yaml", help="dydet model YAML")
    ap.add_argument("--static", default="yolo11n.yaml,yolo11s.yaml", help="comma-separated static model YAMLs")
    ap.add_argument("--epochs", type=int, default=30, help="training epochs of every model (Dy: stage 1)")
    ap.add_argument("--stage2-epochs", type=int, default=None, help="Dy router epochs (default: dydet's)")
    ap.add_argument("--imgsz", type=int, default=256, help="dataset, training, validation and latency image size")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--nbs", type=int, default=None, help="nominal batch size (default: Ultralytics' 64)")
    ap.add_argument("--optimizer", default="AdamW")
    ap.add_argument("--lr0", type=float, default=0.002)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-train", type=int, default=3000)
    ap.add_argument("--n-val", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="training device: cpu or 0")
    ap.add_argument("--latency-device", default="cpu", help="latency device: cpu, or 0 for CUDA (fp16 + graphs)")
    ap.add_argument("--reps", type=int, default=20, help="interleaved latency repetitions")
    ap.add_argument("--project", required=True, help="output folder (made absolute)")
    ap.add_argument("--plots", action="store_true", help="let Ultralytics draw its training plots")
    ap.add_argument("--dy-weights", default=None, help="skip Dy training: a calibrated dydet checkpoint")
    ap.add_argument("--static-weights", default=None, help="skip static training: comma-separated .pt, as --static")
    ap.add_argument(
        "--static-maps",
        default=None,
        help="skip static training and validation: comma-separated mAP50-95/mAP50 of each --static model, measured "
        "earlier with this recipe (costs and latency are measured on the models built from their YAMLs)",
    )
    return ap.parse_args(argv)


def recipe(args: argparse.Namespace, data: Path, project: Path) -> dict[str, Any]:
    """Return the training arguments every model gets (the same recipe and budget)."""
    return {
        "data": str(data),
        "epochs": args.epochs,
        "imgsz": args.imgsz,
        "batch": args.batch,
        "optimizer": args.optimizer,
        "lr0": args.lr0,
        "seed": args.seed,
        "deterministic": True,
        "workers": args.workers,
        "device": args.device,
        "project": str(project),
        "exist_ok": True,
        "plots": args.plots,
        "verbose": False,
        **({"nbs": args.nbs} if args.nbs else {}),
    }


def train_dy(args: argparse.Namespace, train: dict[str, Any]) -> DynamicYOLO:
    """Train (or load) the Dy model: stage 1, stage 2 and calibration."""
    if args.dy_weights:
        return DynamicYOLO(args.dy_weights)
    model = DynamicYOLO(args.dy)
    model.train(**train, name=Path(args.dy).stem, stage="all", stage2_epochs=args.stage2_epochs)
    return model


def static_cfgs(args: argparse.Namespace) -> list[str]:
    """Return the static model YAMLs of `--static`."""
    return [c.strip() for c in args.static.split(",") if c.strip()]


def train_static(args: argparse.Namespace, train: dict[str, Any]) -> dict[str, Any]:
    """Train (or load) every static model; return {name: model}.

    Ultralytics' models train through `ultralytics.YOLO`; the YOLOv7 family, which only dydet builds, through
    `dydet.StaticYOLO` (Ultralytics' trainer with dydet's model class): the same recipe either way.
    """
    from ultralytics import YOLO

    from dydet import StaticYOLO
    from dydet.engine.benchmarks.candidates import built_by_dydet

    cfgs = static_cfgs(args)
    if args.static_weights:
        paths = [p.strip() for p in args.static_weights.split(",") if p.strip()]
        return {Path(c).stem: (StaticYOLO if built_by_dydet(c) else YOLO)(p) for c, p in zip(cfgs, paths)}
    out = {}
    for cfg in cfgs:
        model = (StaticYOLO if built_by_dydet(cfg) else YOLO)(cfg)
        model.train(**train, name=Path(cfg).stem)
        out[Path(cfg).stem] = model
    return out


def given_statics(args: argparse.Namespace, nc: int) -> tuple[dict[str, Any], dict[str, tuple[float, float]]]:
    """Return the static models built from `--static` (for costs and latency) and their accuracies (`--static-maps`).

    For static models that an earlier run trained and validated with this recipe: weights do not change what is timed.
    """
    from dydet.engine.benchmarks.candidates import load_static

    cfgs = static_cfgs(args)
    maps = [tuple(float(v) for v in m.split("/")) for m in args.static_maps.split(",") if m.strip()]
    if len(maps) != len(cfgs) or any(len(m) != 2 for m in maps):
        raise SystemExit(f"--static-maps needs one mAP50-95/mAP50 pair per --static model ({len(cfgs)}), got {maps}")
    return {Path(c).stem: load_static(c, nc) for c in cfgs}, {Path(c).stem: m for c, m in zip(cfgs, maps)}


def collect(
    tradeoff: list[dict[str, float]],
    static_maps: dict[str, tuple[float, float]],
    speed: Any,
    dy_name: str,
) -> list[dict[str, Any]]:
    """Join accuracy (trade-off rows, static metrics) with cost (the speed run) into the output rows.

    Args:
        tradeoff (list[dict]): `metrics.tradeoff` of the calibrated Dy model (router and random mAP per hard ratio).
        static_maps (dict): Static model name -> (mAP50-95, mAP50).
        speed (BenchmarkResult): The latency run (dynamic rows at the same hard ratios, static rows by name).
        dy_name (str): The Dy model's name.

    Returns:
        (list[dict]): Rows with `FIELDS`.
    """
    mode = speed.deployed_mode
    dyn = {r["hard_ratio"]: r for r in speed.rows if r["mode"] == mode and r["kind"] == "dynamic"}
    rows = []
    for name, (m, m50) in static_maps.items():
        r = speed.row(name, mode)
        rows.append(dict(zip(FIELDS, (name, "static", None, r["gflops"], r["bs1_ms"], m, m50))))
    for t in tradeoff:
        p = round(float(t["hard_ratio"]), 4)
        cost = dyn.get(p)
        g, ms = (cost["gflops"], cost["bs1_ms"]) if cost else (t["GFLOPs"], float("nan"))
        rows.append(dict(zip(FIELDS, (dy_name, "router", p, g, ms, t["mAP50-95"], t["mAP50"]))))
        rows.append(dict(zip(FIELDS, (dy_name, "random", p, g, ms, t["random_mAP50-95"], t["random_mAP50"]))))
    return rows


def static_line_margins(rows: list[dict[str, Any]], key: str = "gflops") -> list[dict[str, float]]:
    """Compare each router point with the static models' piecewise-linear accuracy/cost line at the same cost.

    Args:
        rows (list[dict]): Rows from `collect`.
        key (str): The cost axis, 'gflops' or 'latency_ms'.

    Returns:
        (list[dict]): For every router point inside the static models' cost range: `hard_ratio`, its cost, its
            mAP50-95, the line's mAP50-95 at that cost and `margin` (router minus line). Empty with fewer than two
            static models.
    """
    static = sorted((r for r in rows if r["curve"] == "static"), key=lambda r: r[key])
    if len(static) < 2:
        return []
    xs, ys = [r[key] for r in static], [r["mAP50-95"] for r in static]
    out = []
    for r in sorted((r for r in rows if r["curve"] == "router"), key=lambda r: r["hard_ratio"]):
        if not xs[0] <= r[key] <= xs[-1]:
            continue
        line = float(np.interp(r[key], xs, ys))
        out.append({"hard_ratio": r["hard_ratio"], key: r[key], "mAP50-95": r["mAP50-95"], "line": line,
                    "margin": r["mAP50-95"] - line})  # fmt: skip
    return out


def route_verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """Return lines on the hard route against the largest static model and on the router's share of the gain.

    The hard route's mAP50-95 against the largest static model's, the hard ratio at which their GFLOPs are equal, and
    the share of the hard route's gain over the easy route that the router (and random routing) recovers at 50/50.
    """
    router = {r["hard_ratio"]: r for r in rows if r["curve"] == "router"}
    random = {r["hard_ratio"]: r for r in rows if r["curve"] == "random"}
    static = sorted((r for r in rows if r["curve"] == "static"), key=lambda r: r["gflops"])
    if not (router and {0.0, 0.5, 1.0} <= set(router)):
        return []
    easy, hard = router[0.0]["mAP50-95"], router[1.0]["mAP50-95"]
    out = []
    if static:
        top = static[-1]
        ratios = sorted(router)
        gflops = [router[p]["gflops"] for p in ratios]
        at = (
            f"its cost equals {top['model']}'s at hard ratio {float(np.interp(top['gflops'], gflops, ratios)):.2f}"
            if gflops[0] <= top["gflops"] <= gflops[-1]
            else f"its costs span {gflops[0]:.3f}-{gflops[-1]:.3f} GFLOPs against {top['model']}'s {top['gflops']:.3f}"
        )
        out.append(
            f"The hard route reaches mAP50-95 {hard:.4f} against {top['model']}'s {top['mAP50-95']:.4f} "
            f"({hard - top['mAP50-95']:+.4f}); {at}."
        )
    if hard > easy:
        router_gain = (router[0.5]["mAP50-95"] - easy) / (hard - easy)
        random_gain = (random[0.5]["mAP50-95"] - easy) / (hard - easy)
        out.append(
            f"At a 50/50 split the router recovers {router_gain:.0%} of the hard route's gain over the easy route "
            f"({hard - easy:+.4f}); random routing {random_gain:.0%}."
        )
    return out


def plot_accuracy_vs_cost(rows: list[dict[str, Any]], path: Path, latency_label: str, title: str = "") -> Path:
    """Draw mAP50-95 against GFLOPs (left) and against measured latency (right): static points, Dy curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5), tight_layout=True)
    for ax, key, xlabel in zip(axes, ("gflops", "latency_ms"), ("GFLOPs per image", latency_label)):
        for curve, style, label in (("router", "ro-", "router"), ("random", "bs:", "random routing")):
            pts = sorted((r for r in rows if r["curve"] == curve), key=lambda r: r["hard_ratio"])
            if not pts:
                continue
            ax.plot([r[key] for r in pts], [r["mAP50-95"] for r in pts], style, label=f"{pts[0]['model']} {label}")
            if curve == "router":
                for r in pts:
                    ax.annotate(f"{r['hard_ratio']:.1f}", (r[key], r["mAP50-95"]), fontsize=7, xytext=(3, -9),
                                textcoords="offset points")  # fmt: skip
        static = sorted((r for r in rows if r["curve"] == "static"), key=lambda r: r[key])
        if len(static) > 1:
            ax.plot([r[key] for r in static], [r["mAP50-95"] for r in static], "k--", lw=1, alpha=0.5,
                    label="static models, linear interpolation")  # fmt: skip
        for r in static:
            ax.plot(r[key], r["mAP50-95"], "k^", markersize=9)
            ax.annotate(r["model"], (r[key], r["mAP50-95"]), fontsize=8, xytext=(5, 4), textcoords="offset points")
        ax.plot([], [], "k^", label="static models")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("mAP50-95")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title("accuracy vs GFLOPs (labels: share of images sent hard)")
    axes[1].set_title("accuracy vs measured latency")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def write_tables(rows: list[dict[str, Any]], project: Path, header: str) -> tuple[Path, Path]:
    """Write accuracy_vs_cost.csv and accuracy_vs_cost.md."""
    csv_path, md_path = project / "accuracy_vs_cost.csv", project / "accuracy_vs_cost.md"
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)

    def cell(v: Any, fmt: str) -> str:
        return "" if v is None else format(v, fmt)

    lines = [header, "", "| model | curve | hard ratio | GFLOPs | latency ms | mAP50-95 | mAP50 |", "|---" * 7 + "|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['curve']} | {cell(r['hard_ratio'], '.1f')} | {r['gflops']:.3f} | "
            f"{r['latency_ms']:.2f} | {r['mAP50-95']:.4f} | {r['mAP50']:.4f} |"
        )
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def main(argv: list[str] | None = None) -> dict[str, Path]:
    """Run the whole comparison; return the paths written."""
    args = parse_args(argv)
    t0 = time.perf_counter()
    project = Path(args.project).expanduser().resolve()
    project.mkdir(parents=True, exist_ok=True)
    if args.preset == "demo":  # the demo's own data, whatever the training seed (what `dydet train` uses)
        data = make_dataset("demo")
        args.n_train, args.n_val = PRESETS["demo"].n_train, PRESETS["demo"].n_val
    else:
        data = make_dataset("bench", n_train=args.n_train, n_val=args.n_val, imgsz=args.imgsz, seed=args.seed)
    train = recipe(args, data, project)
    val = {"data": str(data), "imgsz": args.imgsz, "batch": args.batch, "device": args.device, "plots": False}

    dy = train_dy(args, train)
    dy_name = Path(dy.model.yaml.get("yaml_file") or args.dy).stem  # e.g. dy-yolo11n, also for a checkpoint
    dy_metrics = dy.val(**val, project=str(project), name=f"{dy_name}-val", exist_ok=True)
    if not dy_metrics.tradeoff:
        raise SystemExit(f"{dy_name} is not calibrated: train it with stage=all (or pass a calibrated --dy-weights)")
    if args.static_maps:
        statics, static_maps = given_statics(args, nc=len(dy.model.names))
    else:
        trained, static_maps = train_static(args, train), {}
        for name, model in trained.items():
            m = model.val(**val, project=str(project), name=f"{name}-val", exist_ok=True)
            static_maps[name] = (float(m.box.map), float(m.box.map50))
        statics = {name: model.model for name, model in trained.items()}

    speed = benchmark_speed(
        dy.model,
        baselines=list(statics.values()),
        imgsz=args.imgsz,
        batch=8,
        hard_ratios=[float(r["hard_ratio"]) for r in dy_metrics.tradeoff],
        reps=args.reps,
        device=args.latency_device,
        images=data,
        save_dir=project / "speed",
    )
    # the speed run names static rows by their YAML stems; map them to the names used here
    for name, label in zip(statics, speed.meta["baselines"]):
        for r in speed.rows:
            if r["name"] == label:
                r["name"] = name
    rows = collect(dy_metrics.tradeoff, static_maps, speed, dy_name)
    mode = speed.deployed_mode
    latency_label = f"batch-1 latency, ms ({speed.meta['device_name']}, {speed.meta['precision']}, {mode})"
    wall = time.perf_counter() - t0
    header = (
        f"Accuracy vs cost on the synthetic '{args.preset}' dataset ({args.n_train} train / {args.n_val} val images, "
        f"{args.imgsz} px); recipe: {args.epochs} epochs, batch {args.batch}"
        f"{f', nbs {args.nbs}' if args.nbs else ''}, {args.optimizer} lr0={args.lr0}, "
        f"seed {args.seed}, device {args.device}; Dy stage 2: {args.stage2_epochs or 'default'} router epochs. "
        f"Latency: {latency_label}, {args.reps} interleaved reps. Wall time {wall / 60:.1f} min."
        + (f" Dy model not trained here: {args.dy_weights}." if args.dy_weights else "")
        + (f" Static models not trained here: {args.static_weights}." if args.static_weights else "")
        + (f" Static accuracies given (mAP50-95/mAP50): {args.static_maps}." if args.static_maps else "")
        + "\n\n"
        f"Command: `{shlex.join(['python', 'benchmarks/accuracy_vs_cost.py', *(argv or sys.argv[1:])])}`"
    )
    verdicts = []
    for key, unit in (("gflops", "GFLOPs"), ("latency_ms", "latency")):
        m = static_line_margins(rows, key)
        if m:
            above = sum(x["margin"] > 0 for x in m)
            verdicts.append(
                f"At equal {unit}, the router curve lies above the line between the static models at {above} of its "
                f"{len(m)} points inside their range (margin {min(x['margin'] for x in m):+.4f} to "
                f"{max(x['margin'] for x in m):+.4f} mAP50-95)."
            )
    verdicts += route_verdicts(rows)
    if verdicts:
        header += "\n\n" + "\n".join(verdicts)
    csv_path, md_path = write_tables(rows, project, header)
    png_path = plot_accuracy_vs_cost(
        rows, project / "accuracy_vs_cost.png", latency_label, f"{dy_name} vs {', '.join(statics)}: {args.epochs} ep"
    )
    print(md_path.read_text())
    print(f"Results in {project} ({wall:.0f} s)")
    return {"csv": csv_path, "md": md_path, "png": png_path, "speed": project / "speed"}


if __name__ == "__main__":
    main()
