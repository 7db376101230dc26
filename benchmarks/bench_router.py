"""Router benchmark: train a Dy model on the embedded benchmark dataset and check the router.

Runs stage 1, stage 2 and calibration, then prints the trade-off table over hard ratios (router vs random vs oracle
routing) and checks the targets: the router beats random routing at hard ratios 0.3, 0.5 and 0.7, and at 0.5 recovers
at least 60 % of the hard route's mAP50-95 gain over the easy route.

Usage:
    python benchmarks/bench_router.py --project $PWD/runs/bench [--n-train 1200 --n-val 400 --imgsz 160 --epochs 30]

Stage 1 takes about an hour on 2 CPU cores; to re-run only stage 2 and calibration from its checkpoint:
    python benchmarks/bench_router.py --project $PWD/runs/bench --stage1 $PWD/runs/bench/router/weights/best.pt
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from dydet.utils.offline import setup_offline

setup_offline()  # first: Ultralytics reads its offline settings once, when it is imported

from dydet import DynamicYOLO
from dydet.data.synthetic import make_dataset


def check_targets(rows: list[dict[str, float]]) -> list[tuple[str, bool]]:
    """Return (description, met) for each router target, from trade-off rows."""
    by_ratio = {round(r["hard_ratio"], 1): r for r in rows}
    checks = [
        (
            f"router > random at {p}: {by_ratio[p]['mAP50-95']:.4f} vs {by_ratio[p]['random_mAP50-95']:.4f}",
            by_ratio[p]["mAP50-95"] > by_ratio[p]["random_mAP50-95"],
        )
        for p in (0.3, 0.5, 0.7)
    ]
    easy, hard, half = by_ratio[0.0]["mAP50-95"], by_ratio[1.0]["mAP50-95"], by_ratio[0.5]["mAP50-95"]
    recovered = (half - easy) / (hard - easy) if hard > easy else float("nan")
    checks.append((f"gain recovered at 0.5: {recovered:.0%} of {hard - easy:.4f} (target >= 60%)", recovered >= 0.6))
    return checks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="dy-yolo11n.yaml")
    ap.add_argument("--project", default=str(Path.cwd() / "runs" / "bench"))
    ap.add_argument("--name", default="router")
    ap.add_argument("--n-train", type=int, default=1200)
    ap.add_argument("--n-val", type=int, default=400)
    ap.add_argument("--imgsz", type=int, default=160)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--stage1", default=None, help="skip stage 1: a stage-1 checkpoint of this dataset and size")
    args = ap.parse_args()

    t0 = time.perf_counter()
    data = make_dataset("bench", n_train=args.n_train, n_val=args.n_val, imgsz=args.imgsz)
    model = DynamicYOLO(args.stage1 or args.model)
    model.train(
        data=str(data),
        stage=2 if args.stage1 else "all",
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        device=args.device,
        project=str(Path(args.project).resolve()),
        name=args.name,
        exist_ok=True,
        workers=2,
    )
    print(
        f"\n{args.stage1 or args.model} on bench ({args.n_train}/{args.n_val} images, {args.imgsz} px, "
        f"{'stage 2 only' if args.stage1 else f'{args.epochs} epochs'}), "
        f"{time.perf_counter() - t0:.0f} s, final checkpoint {model.ckpt_path}"
    )
    for text, met in check_targets(model.metrics.tradeoff):
        print(f"  {'OK    ' if met else 'MISSED'} {text}")


if __name__ == "__main__":
    main()
