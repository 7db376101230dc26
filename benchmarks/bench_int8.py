"""Accuracy of the int8 OpenVINO export against its `.pt`: per-route mAP50-95 and route agreement at hard ratio 0.5.

Exports the checkpoint with `quantize=8` (NNCF, calibrated on the data YAML's validation images, the export's routing
calibration recomputed on the int8 router), then predicts every validation image with the `.pt` and with the export
through the same prediction loop (conf 0.001, IoU 0.7, max_det 300, as validation) and scores both alike against the
YOLO labels with Ultralytics' matching and AP (`DetectionValidator.match_predictions`, `ap_per_class`): easy route,
hard route, and routed at hard ratio 0.5, each model resolving the ratio with its own calibration. Route agreement is
the share of images that take the same route in both at hard ratio 0.5, and again with each model sending the
lower-scoring half of the images (by its own predict-time scores) hard.

Usage:
    python benchmarks/bench_int8.py --weights final.pt --data data.yaml [--imgsz 160] [--project DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from dydet.utils.offline import setup_offline

setup_offline()

import numpy as np
import torch
from ultralytics.models.yolo.detect import DetectionValidator
from ultralytics.utils.metrics import ap_per_class, box_iou
from ultralytics.utils.ops import xywhn2xyxy

from dydet import DynamicYOLO
from dydet.engine.exported import predict_exported
from dydet.engine.quantize import split_images

PREDICT = dict(conf=0.001, iou=0.7, max_det=300, batch=1, verbose=False)


def labels(file: Path, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return an image's YOLO labels as (classes, xyxy pixel boxes)."""
    txt = Path(str(file).replace("/images/", "/labels/")).with_suffix(".txt")
    rows = np.loadtxt(txt, ndmin=2).reshape(-1, 5) if txt.is_file() and txt.stat().st_size else np.zeros((0, 5))
    t = torch.from_numpy(rows).float()
    return t[:, 0], xywhn2xyxy(t[:, 1:], w=w, h=h)


def map50_95(results: list, names: dict) -> float:
    """Return mAP50-95 of predictions (Results) against the YOLO labels of their images."""
    matcher = DetectionValidator()
    matcher.iouv = torch.linspace(0.5, 0.95, 10)
    tps, confs, pcls, tcls = [], [], [], []
    for r in results:
        h, w = r.orig_shape
        cls, boxes = labels(Path(r.path), h, w)
        tcls.append(cls.numpy())
        order = r.boxes.conf.argsort(descending=True)
        pc, pb, conf = r.boxes.cls[order].cpu(), r.boxes.xyxy[order].cpu(), r.boxes.conf[order].cpu()
        tp = matcher.match_predictions(pc, cls, box_iou(boxes, pb)) if len(cls) and len(pc) else None
        tps.append(tp.numpy() if tp is not None else np.zeros((len(pc), 10), bool))
        confs.append(conf.numpy())
        pcls.append(pc.numpy())
    ap = ap_per_class(np.concatenate(tps), np.concatenate(confs), np.concatenate(pcls), np.concatenate(tcls))[5]
    return float(ap.mean()) if len(ap) else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--imgsz", type=int, default=None, help="default: the calibration's image size")
    ap.add_argument("--project", default=str(Path.cwd() / "runs" / "int8"))
    args = ap.parse_args()

    t0 = time.perf_counter()
    pt = DynamicYOLO(args.weights)
    imgsz = args.imgsz or (pt.model.calibration or {}).get("imgsz") or 640
    out = pt.export(format="openvino", quantize=8, data=args.data, imgsz=imgsz, project=args.project, name="int8")
    t_export = time.perf_counter() - t0
    files = split_images(args.data)
    names = pt.model.names
    rows, routed = {}, {}
    for key, routing in (("easy", {"route": "easy"}), ("hard", {"route": "hard"}), ("p=0.5", {"hard_ratio": 0.5})):
        a = pt.predict(files, imgsz=imgsz, **routing, **PREDICT)
        b = predict_exported(out, files, **routing, **PREDICT)
        rows[key] = (map50_95(a, names), map50_95(b, names))
        routed[key] = (a, b)
    a, b = routed["p=0.5"]
    agree = np.mean([x.route == y.route for x, y in zip(a, b)])
    hard = (np.mean([x.route == "hard" for x in a]), np.mean([y.route == "hard" for y in b]))
    print(
        f"\n{args.weights} vs its int8 OpenVINO export, {len(files)} validation images of {args.data} at {imgsz} px "
        f"(export {t_export:.0f} s, total {time.perf_counter() - t0:.0f} s)"
    )
    print("| route | .pt mAP50-95 | int8 mAP50-95 | int8 - .pt |\n|---|---:|---:|---:|")
    for key, (x, y) in rows.items():
        print(f"| {key} | {x:.4f} | {y:.4f} | {y - x:+.4f} |")
    print(
        f"route agreement at hard ratio 0.5: {agree:.1%} of {len(files)} images "
        f"(hard share: .pt {hard[0]:.1%}, int8 {hard[1]:.1%})"
    )
    # the same, with each model splitting these images 50/50 by its own predict-time scores: what agreement would be
    # if the .pt's calibration held exactly the scores predict computes (the int8 export's does by construction)
    sa, sb = (np.array([r.score for r in rs]) for rs in (a, b))
    split = np.mean((sa < np.median(sa)) == (sb < np.median(sb)))
    print(f"route agreement when both send the lower-scoring half of these images hard: {split:.1%}")


if __name__ == "__main__":
    main()
