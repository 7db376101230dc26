"""Route-cost benchmark for the dynamic model core (CPU by default), all candidates timed side by side.

Measures, with interleaved repetitions and medians in one run:
  * batch 1: the easy route, the hard route, the static base model of the same scale, and routed-all-easy (router on);
  * batch 8: all-easy, all-hard, and the dynamic model at a 50 % hard ratio, against the linear mix of the two routes.
Prints the ratios with their targets: easy / static base <= 1.05; dynamic(0.5) / linear mix <= 1.10.

Usage:
    python benchmarks/bench_routes.py [--model dy-yolo11n.yaml] [--imgsz 320] [--reps 30] [--batch 8]
"""

from __future__ import annotations

import argparse
import re

import torch

import dydet  # noqa: F401  (offline settings before ultralytics)
from dydet.nn.tasks import DynamicDetectionModel
from dydet.utils.flops import route_gflops
from dydet.utils.timing import interleaved_medians


def split_threshold(model: DynamicDetectionModel, x: torch.Tensor, hard_ratio: float) -> float:
    """Return a threshold that sends exactly `hard_ratio` of the batch `x` to the hard route."""
    s = model.router_scores(x).sort().values
    k = round(hard_ratio * len(s))
    if not 0 < k < len(s) or s[k - 1] == s[k]:
        raise SystemExit("router scores tie on this batch; cannot split it exactly")
    return float((s[k - 1] + s[k]) / 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="dy-yolo11n.yaml")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()

    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DynamicDetectionModel(args.model, verbose=False)
    for conv in (model.router.reduce, model.router.score):  # spread the untrained router so a batch can split 50/50
        torch.nn.init.normal_(conv.weight, std=2.0)
    model.fuse(verbose=False).eval()
    base_name = re.sub(r"^dy-", "", args.model)
    base = DetectionModel(base_name, verbose=False).fuse(verbose=False).eval()

    n, sz = args.batch, args.imgsz
    x1 = torch.rand(1, 3, sz, sz)
    xb = torch.rand(n, 3, sz, sz) * torch.linspace(0.05, 1.0, n).view(n, 1, 1, 1)
    with torch.inference_mode():
        t = split_threshold(model, xb, 0.5)
        one = interleaved_medians(
            {
                "easy": lambda: model(x1, route="easy"),
                "hard": lambda: model(x1, route="hard"),
                "static": lambda: base(x1),
                "routed_easy": lambda: model(x1, threshold=0.0),
            },
            reps=args.reps,
            progress=True,
        )
        batch = interleaved_medians(
            {
                "easy": lambda: model(xb, route="easy"),
                "hard": lambda: model(xb, route="hard"),
                "dynamic": lambda: model(xb, threshold=t),
            },
            reps=args.reps,
            progress=True,
        )
        model(xb, threshold=t)
        p = model.routing.hard_ratio

    mix = (1 - p) * batch["easy"] + p * batch["hard"]
    g_easy, g_hard = route_gflops(model, "easy", sz), route_gflops(model, "hard", sz)
    print(f"\n{args.model} vs {base_name}, CPU threads={torch.get_num_threads()}, {sz}px, {args.reps} interleaved reps")
    print(f"GFLOPs @ {sz}: easy {g_easy:.3f}  hard {g_hard:.3f}  router {route_gflops(model, 'router', sz):.5f}")
    print(
        f"batch 1 (median ms): easy {one['easy']:.2f}  hard {one['hard']:.2f}  static {one['static']:.2f}  "
        f"routed-all-easy {one['routed_easy']:.2f}"
    )
    print(
        f"batch {n} (median ms): all-easy {batch['easy']:.2f}  all-hard {batch['hard']:.2f}  "
        f"dynamic(p={p:.2f}) {batch['dynamic']:.2f}  linear mix {mix:.2f}"
    )
    rows = [
        ("easy route / static base (bs1)", one["easy"] / one["static"], 1.05),
        ("routed all-easy / static base (bs1, router on)", one["routed_easy"] / one["static"], None),
        ("hard route / easy route (bs1)", one["hard"] / one["easy"], None),
        (f"dynamic p={p:.2f} / linear mix (bs{n})", batch["dynamic"] / mix, 1.10),
    ]
    for name, ratio, target in rows:
        verdict = "" if target is None else ("  OK" if ratio <= target else "  MISSED") + f" (target <= {target})"
        print(f"  {name:<50} {ratio:6.3f}{verdict}")


if __name__ == "__main__":
    main()
