"""Router ablation: compare stage-2 objectives on cached router inputs of one stage-1 checkpoint, in seconds.

Stage 2 freezes the detector, so the router's input (B1's pooled stage outputs) and both routes' per-image losses are
fixed per image. This script runs the stage-1 model once over the training and validation splits (no augmentation),
caches the pooled features and `L1`, `L2` per image, then trains fresh routers on the cache with several variants of
the stage-2 objective and reports, on the validation split, mAP50-95 when the given share of images with the lowest
scores goes hard (the same routed metric as the trade-off table), against random and oracle routing.

Usage:
    python benchmarks/router_ablation.py --weights runs/bench/router/weights/best.pt \
        --data ~/.cache/dydet/datasets/bench-seed0-1200x400-160px-v1/data.yaml --imgsz 160
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from dydet.utils.offline import setup_offline

setup_offline()  # first: Ultralytics reads its offline settings once, when it is imported

from dydet import DynamicYOLO
from dydet.nn.modules import Router
from dydet.routing import DEFAULT_THRESHOLD, hard_mask
from dydet.utils.loss import RouterLoss, RunningMedian
from dydet.utils.metrics import hard_by_rank

RATIOS = (0.3, 0.5, 0.7)


def cache_split(weights: str, data: str, split: str, imgsz: int, project: Path):
    """Validate the stage-1 model on one split; return (pooled features, L1, L2, metrics)."""
    model = DynamicYOLO(weights)
    feats: list[torch.Tensor] = []
    model.model.router.reduce.register_forward_hook(lambda m, i, o: feats.append(i[0].flatten(1).detach().cpu()))
    metrics = model.val(data=data, split=split, imgsz=imgsz, batch=32, plots=False, project=str(project), name=split)
    l1, l2 = (torch.tensor(metrics.losses[r]) for r in ("easy", "hard"))
    x = torch.cat(feats)[-len(l1) :]  # the validator's warm-up passes come first
    return x, l1, l2, metrics


def router_logits(router: Router, pooled: torch.Tensor) -> torch.Tensor:
    """Return the router's (N,) score logits for cached pooled stage features of shape (N, C)."""
    return router.score(router.act(router.reduce(pooled[:, :, None, None]))).flatten()


def train_router(
    x: torch.Tensor, l1: torch.Tensor, l2: torch.Tensor, variant: str, lr: float, epochs: int, seed: int = 0
) -> Router:
    """Train a fresh router on cached features with one objective variant; return it.

    Δ comes from the trainer's own `RunningMedian` over the differences seen so far, the current batch included
    (variant 'mean' uses their mean instead).
    """
    torch.manual_seed(seed)
    router = Router([x.shape[1]])
    opt = torch.optim.AdamW(router.parameters(), lr=lr, weight_decay=0.0)
    diffs = l1 - l2
    history = RunningMedian()
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(32):
            history.update(diffs[idx])
            delta = history.values.mean() if variant == "mean" else history.median()
            logit = router_logits(router, x[idx])
            if variant == "centered":
                logit = logit - logit.mean()
            loss = RouterLoss.objective(logit.sigmoid(), l1[idx], l2[idx], delta).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return router


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--imgsz", type=int, default=160)
    ap.add_argument("--project", default="/tmp/router_ablation")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--variants", default="median,centered,mean")
    ap.add_argument("--lrs", default="1e-4,1e-3,1e-2")
    args = ap.parse_args()
    project = Path(args.project).resolve()
    cache = project / "cache.pt"
    if cache.exists():
        xt, l1t, l2t, xv, l1v, l2v, metrics = torch.load(cache, weights_only=False)
    else:
        xt, l1t, l2t, _ = cache_split(args.weights, args.data, "train", args.imgsz, project)
        xv, l1v, l2v, metrics = cache_split(args.weights, args.data, "val", args.imgsz, project)
        torch.save((xt, l1t, l2t, xv, l1v, l2v, metrics), cache)

    def routed(key: np.ndarray) -> list[float]:
        return [metrics.routed(hard_by_rank(key, p)).mean_results()[3] for p in RATIOS]

    easy = metrics.routed(np.zeros(len(xv), bool)).mean_results()[3]
    hard = metrics.routed(np.ones(len(xv), bool)).mean_results()[3]
    rng = np.random.default_rng(0)
    random = np.mean([routed(rng.random(len(xv))) for _ in range(5)], 0)
    oracle = routed(-(l1v - l2v).numpy())
    print(f"easy {easy:.4f}  hard {hard:.4f}  (gain {hard - easy:.4f})")
    print(f"{'variant':>10} {'lr':>7} " + " ".join(f"{p:>8}" for p in RATIOS) + "  rec@0.5  score-mean  hard@0.5")
    for name, vals in (("random", random), ("oracle", oracle)):
        print(
            f"{name:>10} {'':>7} " + " ".join(f"{v:8.4f}" for v in vals) + f"  {(vals[1] - easy) / (hard - easy):6.1%}"
        )
    for variant in args.variants.split(","):
        for lr in (float(v) for v in args.lrs.split(",")):
            router = train_router(xt, l1t, l2t, variant, lr, args.epochs)
            with torch.no_grad():
                logit = router_logits(router, xv)
            vals = routed(logit.numpy())  # rank by logit: no ties even where the sigmoid saturates
            s = logit.sigmoid()
            hard_share = hard_mask(s, DEFAULT_THRESHOLD).float().mean()
            print(
                f"{variant:>10} {lr:7.0e} " + " ".join(f"{v:8.4f}" for v in vals)
                + f"  {(vals[1] - easy) / (hard - easy):6.1%}  {s.mean():10.4f}  {hard_share:7.1%}"
            )  # fmt: skip


if __name__ == "__main__":
    main()
