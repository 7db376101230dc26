"""Train the static yolo11n and yolo11s that the demo recipe starts from, and ship them in dydet/assets/demo/.

The demo (`dydet train` without model= or data=) fine-tunes a Dy-YOLO11n-s whose easy route starts from a static
yolo11n and whose hard route starts from a static yolo11s, both trained here with one recipe on the demo dataset's
training split (data seed 0; the validation split is only validated on), so the gap between the routes is the gap
between the two scales and does not depend on the demo's training seed. Ultralytics strips the optimizer and stores
fp16 weights in `best.pt`; those files are copied as they are.

Usage:
    python scripts/demo_statics.py --project $PWD/runs/demo_statics          # trains both (about 25 min on 2 cores)
    python scripts/demo_statics.py --project $PWD/runs/demo_statics --no-train   # only copy finished runs
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "dydet" / "assets" / "demo"

RECIPE = {
    "imgsz": 96,
    "batch": 16,
    "nbs": 16,
    "optimizer": "AdamW",
    "lr0": 0.002,
    "warmup_epochs": 1,
    "close_mosaic": 5,
    "workers": 0,
    "plots": False,
    "val": True,
    "seed": 0,
    "deterministic": True,
}


def main() -> None:
    """Train (unless --no-train) and copy the statics."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--scales", nargs="+", default=["n", "s"])
    parser.add_argument("--no-train", action="store_true", help="copy the best.pt of finished runs only")
    args = parser.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    import dydet  # noqa: F401  (offline settings before ultralytics runs)
    from dydet.data.synthetic import make_dataset

    data = make_dataset("demo", seed=0)
    ASSETS.mkdir(parents=True, exist_ok=True)
    for scale in args.scales:
        name = f"yolo11{scale}"
        if not args.no_train:
            model = YOLO(f"{name}.yaml")
            model.train(
                data=str(data),
                epochs=args.epochs,
                project=str(args.project.resolve()),
                name=name,
                exist_ok=True,
                **RECIPE,
            )
        tmp = ASSETS / f".{name}.pt.tmp"
        shutil.copyfile(args.project / name / "weights" / "best.pt", tmp)
        os.replace(tmp, ASSETS / f"{name}.pt")
        print(f"{ASSETS / f'{name}.pt'} <- {args.project / name / 'weights' / 'best.pt'}")


if __name__ == "__main__":
    main()
