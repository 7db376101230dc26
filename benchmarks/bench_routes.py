"""Route-cost benchmark of the dynamic model core, all candidates timed side by side (`dydet.engine.benchmarks`).

A thin command-line wrapper of `benchmark_speed`: batch-1 latency and batched throughput of the easy route, the hard
route, the static models of the same family (random weights), routed all-easy (router on) and the dynamic model at
each hard ratio, with interleaved repetitions and medians. Prints the ratios beside their reference values (easy /
static base: 1, dynamic(p) / linear mix: 1, ...); the project's targets for them (CPU: easy / static base <= 1.05,
dynamic(p) / linear mix <= 1.10 at batch 1, batched throughput at p=0.5 >= 1.3x all-hard; CUDA graphs: easy / static
base <= 1.15) are in docs/BENCHMARKS.md. Writes speed.csv, speed.md and speed.png when --save-dir is given.

Usage:
    python benchmarks/bench_routes.py [--model dy-yolo11n.yaml] [--imgsz 320] [--reps 30] [--batch 8]
        [--baselines yolo11n.yaml,yolo11s.yaml] [--device cpu|0] [--save-dir runs/bench] [--threads N]
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from dydet.utils.offline import setup_offline

setup_offline()  # first: Ultralytics reads its offline settings once, when it is imported

from dydet import cfg
from dydet.engine.benchmarks import benchmark_speed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="dy-yolo11n.yaml", help="dydet YAML or checkpoint")
    ap.add_argument("--baselines", default=None, help="comma-separated static models (default: the family's)")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--seq", type=int, default=10, help="images per batch-1 sequence")
    ap.add_argument("--hard-ratios", default=",".join(map(str, cfg.default("hard_ratios"))))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: Ultralytics' choice)")
    ap.add_argument("--no-graphs", action="store_true", help="on CUDA, skip the CUDA-graph timings")
    ap.add_argument("--save-dir", default=None)
    args = ap.parse_args()
    benchmark_speed(  # logs the table; writes the files when --save-dir is given
        args.model,
        baselines=args.baselines,
        imgsz=args.imgsz,
        batch=args.batch,
        hard_ratios=[float(p) for p in args.hard_ratios.split(",")],
        reps=args.reps,
        seq=args.seq,
        device=args.device,
        cuda_graphs=False if args.no_graphs else None,
        threads=args.threads,
        save_dir=Path(args.save_dir).resolve() if args.save_dir else None,
        command=shlex.join(["python", *sys.argv]),
    )


if __name__ == "__main__":
    main()
