"""The share of images that a raw `threshold=0.5` sends hard, for a model and its exports side by side.

Calibration normalizes the router so that 0.5 sits at the median score of the calibration images; the
normalization is part of the weights, so every export routes the same images. This script predicts a folder of
images with each model given and prints the share sent hard.

Usage:
    python benchmarks/threshold_share.py --images DATA/images/train --imgsz 96 final.pt final_onnx final_openvino
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    """Print, per model, the share of `--images` that `--threshold` sends to the hard route."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="calibrated .pt files and/or export folders")
    ap.add_argument("--images", type=Path, required=True, help="folder of images")
    ap.add_argument("--imgsz", type=int, required=True)
    ap.add_argument("--threshold", type=float, default=0.5)
    args = ap.parse_args()
    from dydet import DynamicYOLO

    files = sorted(str(p) for p in args.images.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    for m in args.models:
        results = DynamicYOLO(m).predict(
            files, threshold=args.threshold, imgsz=args.imgsz, stream=True, verbose=False, save=False
        )
        hard = np.mean([r.route == "hard" for r in results])
        print(f"{m}: {hard:.1%} of {len(files)} images hard at threshold={args.threshold}")


if __name__ == "__main__":
    main()
