"""The end of the demo job (`dydet train` without `data=`): routed predictions of a few images and what to look at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from ultralytics.utils import LOGGER

from dydet.data.synthetic import load_difficulty
from dydet.routing.payoff import MIN_HARD_GAIN

# Validation images to predict on, picked at these quantiles of the split's difficulty (clean ... cluttered).
DEMO_PREDICT_QUANTILES = (0.02, 0.2, 0.4, 0.6, 0.8, 0.98)


def demo_images(data: str | Path, quantiles: tuple[float, ...] = DEMO_PREDICT_QUANTILES) -> list[Path]:
    """Return validation images of a generated dataset spread over its difficulty range, easiest first.

    Args:
        data (str | Path): The data YAML of a dataset written by `dydet.data.make_dataset`.
        quantiles (tuple[float, ...]): Difficulty quantiles to pick, one image each (duplicates dropped).

    Returns:
        (list[Path]): Image files.
    """
    difficulty = load_difficulty(data, split="val")
    stems = sorted(difficulty, key=difficulty.get)
    picked = dict.fromkeys(stems[round(q * (len(stems) - 1))] for q in quantiles)
    info = yaml.safe_load(Path(data).read_text())
    folder = Path(info["path"]) / info["val"]
    return [next(folder.glob(f"{stem}.*")) for stem in picked]


def display_name(stem: str) -> str:
    """Return a model YAML's name as the docs write it: 'dy-yolo11n-s' -> 'Dy-YOLO11n-s' (other names unchanged)."""
    return "Dy-YOLO" + stem[len("dy-yolo") :] if stem.startswith("dy-yolo") else stem


def _row(rows: list[dict[str, float]], hard_ratio: float) -> dict[str, float]:
    return min(rows, key=lambda r: abs(r["hard_ratio"] - hard_ratio))


def demo_summary(
    rows: list[dict[str, float]], run_dir: Path, predictions: Path, stage1_dir: Path, model_name: str = "Dy-YOLO11n"
) -> str:
    """Return the demo's closing summary: both routes' metrics, the router at a 50/50 split, and where to look.

    Args:
        rows (list[dict]): The trade-off rows of the calibration run (`metrics.tradeoff`).
        run_dir (Path): The stage-2 run folder (holds `weights/final.pt` and `calibration/`).
        predictions (Path): Folder of the saved routed predictions.
        stage1_dir (Path): The stage-1 run folder (training curves).
        model_name (str): What was trained, e.g. `dy-faster-rcnn-r18` (the demo's default: Dy-YOLO11n).

    Returns:
        (str): Multi-line text.
    """
    easy, half, hard = _row(rows, 0.0), _row(rows, 0.5), _row(rows, 1.0)
    final = run_dir / "weights" / "final.pt"
    gain = hard["mAP50-95"] - easy["mAP50-95"]
    if gain >= MIN_HARD_GAIN:
        recovered = f", {(half['mAP50-95'] - easy['mAP50-95']) / gain:.0%} of the hard route's gain"
    else:  # a share of a gain within noise means nothing
        recovered = f"; the hard route gains {gain:+.3f} mAP50-95 here: too little for routing to matter"

    return "\n".join(
        (
            "",
            f"Demo finished: a {model_name} trained on the embedded demo dataset (validation split):",
            f"  easy route ({easy['GFLOPs']:.2f} GFLOPs)               mAP50 {easy['mAP50']:.3f}  "
            f"mAP50-95 {easy['mAP50-95']:.3f}",
            f"  hard route ({hard['GFLOPs']:.2f} GFLOPs)               mAP50 {hard['mAP50']:.3f}  "
            f"mAP50-95 {hard['mAP50-95']:.3f}",
            f"  router at a 50/50 split ({half['GFLOPs']:.2f} GFLOPs)  mAP50 {half['mAP50']:.3f}  mAP50-95 "
            f"{half['mAP50-95']:.3f} (random routing {half['random_mAP50']:.3f} / {half['random_mAP50-95']:.3f}"
            f"{recovered})",
            "Look at:",
            f"  routed predictions (route and router score in each banner): {predictions}",
            f"  trade-off over hard ratios (router, random, oracle): {run_dir / 'calibration' / 'tradeoff.png'}",
            f"  training curves of both routes: {stage1_dir / 'results.png'}",
            "Predict on your own images (hard_ratio= or threshold= picks the trade-off):",
            f"  dydet predict model={final} source=path/to/images hard_ratio=0.5",
        )
    )


def finish_demo(model: Any, data: str | Path, stage1_dir: Path, imgsz: int | None = None) -> Path:
    """Save routed predictions of a few validation images and log the demo's summary.

    Args:
        model (DynamicYOLO): The calibrated model after `train` (its `metrics.tradeoff` and `trainer` set).
        data (str | Path): The demo data YAML.
        stage1_dir (Path): The stage-1 run folder.
        imgsz (int, optional): Prediction image size (the training size).

    Returns:
        (Path): The predictions folder.
    """
    run_dir = Path(model.trainer.save_dir)
    images = demo_images(data)
    kwargs = {"imgsz": imgsz} if imgsz else {}
    model.predict(
        [str(p) for p in images],
        save=True,
        project=str(run_dir),
        name="predictions",
        exist_ok=True,
        verbose=False,
        **kwargs,
    )
    predictions = run_dir / "predictions"
    rows = getattr(model.metrics, "tradeoff", None)
    if rows:
        yaml_file = Path(str(getattr(model.model, "yaml", {}).get("yaml_file", "")))
        name = display_name(yaml_file.stem) if yaml_file.stem else "Dy-YOLO11n"
        LOGGER.info(demo_summary(rows, run_dir, predictions, Path(stage1_dir), model_name=name))
    return predictions


__all__ = ["DEMO_PREDICT_QUANTILES", "demo_images", "demo_summary", "finish_demo"]
