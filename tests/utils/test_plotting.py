import csv
from pathlib import Path

from dydet.utils.plotting import _panels, plot_route_results

METRICS = [f"metrics/{m}({s})" for s in "BEHR" for m in ("precision", "recall", "mAP50", "mAP50-95")]
STAGE1 = [f"{split}/{r}_{k}_loss" for split in ("train", "val") for r in "eh" for k in ("box", "cls", "dfl")]
STAGE2 = [f"{split}/{k}" for split in ("train", "val") for k in ("r_loss", "delta", "score", "hard")]


def _csv(path: Path, columns: list[str]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", *columns])
        for e in range(1, 4):
            w.writerow([e, *[0.1 * e + i * 0.01 for i in range(len(columns))]])
    return path


def test_stage2_plot_draws_the_router_columns(tmp_path):
    panels = dict(_panels(["epoch", *STAGE2, *METRICS]))
    for split in ("train", "val"):
        for title in ("router loss", "Δ (running median)", "mean score", "share hard"):
            assert panels[f"{split} {title}"], title
    assert not panels["train box loss"]  # stage 2 has no detector losses: not drawn (was six empty panels)
    assert {c[0] for c in panels["mAP50-95"]} == {f"metrics/mAP50-95({s})" for s in "BEHR"}
    png = plot_route_results(_csv(tmp_path / "results.csv", [*STAGE2, *METRICS]))
    assert png.is_file() and png.stat().st_size > 10_000


def test_stage1_loss_columns_are_drawn_by_ultralytics_plot_results(tmp_path):
    from ultralytics.utils.plotting import plot_results

    file = _csv(tmp_path / "results.csv", [*STAGE1, *METRICS])
    assert all("loss" in c for c in STAGE1)  # what Ultralytics' plot_results keys on
    plot_results(file=file)
    assert (tmp_path / "results.png").stat().st_size > 10_000
    panels = dict(_panels(["epoch", *STAGE1, *METRICS]))
    assert len(panels["train box loss"]) == 2 and len(panels["val dfl loss"]) == 2
