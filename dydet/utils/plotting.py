"""Plots of per-route training results."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

# line style per curve: the routes (tab:blue easy, tab:red hard), the routed model (B) and the router's 50/50 split
ROUTE_STYLE = {"easy": ("tab:blue", "easy route"), "hard": ("tab:red", "hard route")}
METRIC_STYLE = {
    "E": ("tab:blue", "easy route (E)"),
    "H": ("tab:red", "hard route (H)"),
    "B": ("black", "routed (B)"),
    "R": ("tab:green", "router 50/50 (R)"),
}
ROUTER_COLUMNS = ("r_loss", "delta", "score", "hard")  # stage 2's own columns (`RouterLoss` items)
ROUTER_TITLES = {"r_loss": "router loss", "delta": "Δ (running median)", "score": "mean score", "hard": "share hard"}


def _panels(columns: list[str]) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """Return (title, [(column, color, label), ...]) per panel, for the columns this CSV has."""
    panels = []
    for split in ("train", "val"):
        for k in ("box", "cls", "dfl"):  # stage 1: easy vs hard per loss term
            curves = [(f"{split}/{r[0]}_{k}_loss", *style) for r, style in ROUTE_STYLE.items()]
            panels.append((f"{split} {k} loss", [c for c in curves if c[0] in columns]))
        for k in ROUTER_COLUMNS:  # stage 2: the router's own columns
            panels.append((f"{split} {ROUTER_TITLES[k]}", [(f"{split}/{k}", "tab:purple", k)]))
    for k in ("precision", "recall", "mAP50", "mAP50-95"):
        panels.append((k, [(f"metrics/{k}({s})", *style) for s, style in METRIC_STYLE.items()]))
    return [(title, [c for c in curves if c[0] in columns]) for title, curves in panels]


def plot_route_results(csv: str | Path, on_plot: Callable | None = None) -> Path | None:
    """Plot a dydet `results.csv` into `results.png`: one panel per loss term or router column, one per metric.

    Stage 1 gets easy-vs-hard curves of the train/val box, cls and dfl losses; stage 2 the router's `r_loss`,
    `delta`, `score` and `hard` columns; both get precision, recall, mAP50 and mAP50-95 of each route, the routed
    model `(B)` and the router's 50/50 split `(R)`. Only panels with data are drawn.

    Args:
        csv (str | Path): The trainer's `results.csv`.
        on_plot (Callable, optional): Called with the saved file name.

    Returns:
        (Path | None): The saved `results.png`, or None if the CSV has no rows.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import polars as pl

    csv = Path(csv)
    data = pl.read_csv(csv.read_bytes(), infer_schema_length=None)
    if data.height == 0:
        return None
    data = data.rename({c: c.strip() for c in data.columns})
    epoch = data[data.columns[0]].to_numpy()
    panels = [p for p in _panels(data.columns) if p[1]]
    cols = max((len(panels) + 1) // 2, 1)
    fig, axes = plt.subplots(2, cols, figsize=(3.2 * cols, 6), tight_layout=True, squeeze=False)
    for ax, (title, curves) in zip(axes.ravel(), panels):
        for column, color, label in curves:
            ax.plot(epoch, data[column].to_numpy().astype(float), ".-", color=color, label=label)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if len(curves) > 1:
            ax.legend(fontsize=7)
    for ax in axes.ravel()[len(panels) :]:
        ax.set_visible(False)
    fname = csv.parent / "results.png"
    tmp = fname.with_name(f".{fname.stem}.{os.getpid()}.tmp.png")
    try:
        fig.savefig(tmp, dpi=150)
        os.replace(tmp, fname)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    if on_plot:
        on_plot(fname)
    return fname
