"""The accuracy/cost trade-off of a calibrated dynamic model over hard ratios, against random and oracle routing."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ultralytics.utils import LOGGER

from dydet import cfg
from dydet.routing import hard_ratio_for_threshold, mean_cost, threshold_for_hard_ratio
from dydet.utils.metrics import DynamicDetMetrics, hard_by_rank

RANDOM_SEEDS = 5


def tradeoff_table(
    metrics: DynamicDetMetrics,
    calibration: dict[str, Any],
    hard_ratios: Sequence[float] | None = None,
    latency: Callable[[float], float] | None = None,
) -> list[dict[str, float]]:
    """Compute mAP and cost at each hard ratio for the router, random routing and an oracle routing.

    The router sends the images with the lowest scores hard; random routing a random subset (mean of several seeds);
    the oracle the images whose hard route lowers their detection loss most (`L1 - L2`, largest first).

    Args:
        metrics (DynamicDetMetrics): Metrics of a validation run (per-image records of both routes kept).
        calibration (dict): `model.calibration` (thresholds and per-route GFLOPs).
        hard_ratios (Sequence[float], optional): Hard ratios to evaluate; default: `hard_ratios` of
            `dydet/cfg/default.yaml`.
        latency (Callable[[float], float], optional): Measures per-image latency (ms) at a threshold.

    Returns:
        (list[dict]): One row per hard ratio. `GFLOPs` and `latency_budget_ms` are the mean per-image costs of the
            row's threshold on the calibration split: the `gflops=` / `latency=` budgets that select this row.
            `latency_ms` is the routed batch-1 latency measured now.
    """
    scores = np.asarray(metrics.scores)
    gain = np.asarray(metrics.losses["easy"]) - np.asarray(metrics.losses["hard"])
    rng = np.random.default_rng(0)
    random_keys = [rng.random(len(scores)) for _ in range(RANDOM_SEEDS)]
    rows = []
    for p in cfg.default("hard_ratios") if hard_ratios is None else hard_ratios:
        t = threshold_for_hard_ratio(calibration, p)
        cost = mean_cost(calibration, hard_ratio_for_threshold(calibration, t))  # the budget this row meets
        router = metrics.routed(hard_by_rank(scores, p)).mean_results()
        oracle = metrics.routed(hard_by_rank(-gain, p)).mean_results()
        random = np.mean([metrics.routed(hard_by_rank(k, p)).mean_results() for k in random_keys], 0)
        rows.append(
            {
                "hard_ratio": p,
                "threshold": t,
                "mAP50-95": router[3],
                "mAP50": router[2],
                "GFLOPs": cost["gflops"],
                "latency_budget_ms": cost.get("latency_ms", float("nan")),
                "latency_ms": latency(t) if latency else float("nan"),
                "random_mAP50-95": float(random[3]),
                "random_mAP50": float(random[2]),
                "oracle_mAP50-95": oracle[3],
                "oracle_mAP50": oracle[2],
            }
        )
    return rows


def routed_latency(model: torch.nn.Module, images: list[torch.Tensor]) -> Callable[[float], float]:
    """Return a function measuring the mean per-image latency (ms) of routed batch-1 inference at a threshold."""

    def measure(threshold: float) -> float:
        with torch.inference_mode():
            model(images[0], threshold=threshold)  # warm-up
            t0 = time.perf_counter()
            for im in images:
                model(im, threshold=threshold)
                if im.is_cuda:
                    torch.cuda.synchronize(im.device)
        return (time.perf_counter() - t0) * 1e3 / len(images)

    return measure


def format_table(rows: list[dict[str, float]]) -> str:
    """Render the trade-off rows as an aligned text table."""
    head = ("hard", "threshold", "mAP50-95", "mAP50", "gflops=", "latency=", "ms/img", "random50-95", "oracle50-95")
    lines = [("%6s" + "%12s" * 8) % head]
    for r in rows:
        lines.append(
            ("%6.1f" + "%12.4f" + "%12.4f" * 2 + "%12.3f" + "%12.2f" * 2 + "%12.4f" * 2)
            % (
                r["hard_ratio"],
                r["threshold"],
                r["mAP50-95"],
                r["mAP50"],
                r["GFLOPs"],
                r.get("latency_budget_ms", float("nan")),
                r["latency_ms"],
                r["random_mAP50-95"],
                r["oracle_mAP50-95"],
            )
        )
    lines.append(
        "gflops= / latency=: the budget each row meets (mean GFLOPs / calibrated ms per image on the calibration "
        "split; pass it to val, predict or export to route at that row); ms/img: routed latency measured now"
    )
    return "\n".join(lines)


def save_tradeoff(rows: list[dict[str, float]], save_dir: Path) -> tuple[Path, Path]:
    """Write `tradeoff.csv` and `tradeoff.png` (mAP50-95 against GFLOPs: router, random, oracle) into `save_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    save_dir.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = save_dir / "tradeoff.csv", save_dir / "tradeoff.png"
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    gflops = [r["GFLOPs"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 5), tight_layout=True)
    for key, label, style in (
        ("oracle_mAP50-95", "oracle routing", "g^--"),
        ("mAP50-95", "router", "ro-"),
        ("random_mAP50-95", "random routing", "bs:"),
    ):
        ax.plot(gflops, [r[key] for r in rows], style, label=label)
    for r in rows:
        ax.annotate(
            f"{r['hard_ratio']:.1f}",
            (r["GFLOPs"], r["mAP50-95"]),
            fontsize=7,
            textcoords="offset points",
            xytext=(3, -9),
        )
    ax.set_xlabel("mean GFLOPs per image")
    ax.set_ylabel("mAP50-95")
    ax.set_title("accuracy / cost over hard ratios (labels: share sent hard)")
    ax.legend()
    fig.savefig(png_path, dpi=150)
    plt.close(fig)
    LOGGER.info(f"Trade-off table saved to {csv_path} and {png_path}")
    return csv_path, png_path
