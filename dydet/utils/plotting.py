"""Plots of per-route training results."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

ROUTE_STYLE = {"easy": ("tab:blue", "easy route"), "hard": ("tab:red", "hard route")}


def plot_route_results(csv: str | Path, on_plot: Callable | None = None) -> Path | None:
    """Plot a dydet `results.csv` as easy-vs-hard curves: train/val box, cls, dfl losses and P, R, mAP50, mAP50-95.

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
    epoch = data[data.columns[0]].to_numpy()
    panels = [(f"train/{{}}_{k}", f"train {k} loss") for k in ("box", "cls", "dfl")]
    panels += [(f"val/{{}}_{k}", f"val {k} loss") for k in ("box", "cls", "dfl")]
    panels += [(f"metrics/{k}({{}})", k) for k in ("precision", "recall", "mAP50", "mAP50-95")]
    fig, axes = plt.subplots(2, 5, figsize=(16, 6), tight_layout=True)
    for ax, (pattern, title) in zip(axes.ravel(), panels):
        for route, (color, label) in ROUTE_STYLE.items():
            column = pattern.format(route[0] if pattern.startswith(("train", "val")) else route[0].upper())
            if column in data.columns:
                ax.plot(epoch, data[column].to_numpy().astype(float), ".-", color=color, label=label)
        ax.set_title(title)
        ax.set_xlabel("epoch")
    axes.ravel()[0].legend()
    fname = csv.parent / "results.png"
    fig.savefig(fname, dpi=150)
    plt.close(fig)
    if on_plot:
        on_plot(fname)
    return fname
