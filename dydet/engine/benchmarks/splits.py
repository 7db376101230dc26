"""Exact hard-ratio splits of the benchmark images: thresholds that send round(p * N) of them hard."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn
from ultralytics.utils import LOGGER

from dydet.nn.tasks import DynamicDetectionModel
from dydet.routing import threshold_for_hard_ratio

MIN_SCORE_GAP = {torch.float32: 1e-4, torch.float16: 2e-3, torch.bfloat16: 2e-2}


# -------------------------------------------------------------------------------------------------------- thresholds
def sequence_scores(model: DynamicDetectionModel, images: torch.Tensor, batched: bool) -> torch.Tensor:
    """Router scores of `images`, one image at a time (as batch-1 routing sees them) or as one batch, on the CPU."""
    with torch.inference_mode():
        if batched:
            return model.router_scores(images).float().cpu()
        return torch.cat([model.router_scores(im[None]).float().cpu() for im in images])


def split_thresholds(scores: torch.Tensor, hard_ratios: Iterable[float]) -> list[tuple[float, float, int]]:
    """Return, per hard ratio `p`, a threshold that sends exactly `round(p * N)` of these N scores hard.

    Uses `threshold_for_hard_ratio` (the calibration's rule: halfway between the k-th and (k+1)-th lowest score).

    Returns:
        (list[tuple]): `(p, threshold, k)` per ratio.
    """
    calib = {"scores": scores.tolist()}
    return [(float(p), threshold_for_hard_ratio(calib, p), round(float(p) * len(scores))) for p in hard_ratios]


def split_gaps_ok(scores: torch.Tensor, hard_ratios: Iterable[float], min_gap: float) -> bool:
    """Return whether the scores are at least `min_gap` apart at every split the hard ratios make.

    At each `k = round(p * N)` with 0 < k < N, the k-th and (k+1)-th lowest scores must differ by `min_gap`, so that
    the halfway threshold splits the images exactly, also after rounding to a lower precision.
    """
    s, n = scores.float().sort().values, len(scores)
    ks = {round(float(p) * n) for p in hard_ratios} - {0, n}
    return all(float(s[k] - s[k - 1]) >= min_gap for k in ks)


def spread_router(
    model: DynamicDetectionModel,
    score_sets: Callable[[], list[torch.Tensor]],
    hard_ratios: Iterable[float],
    min_gap: float,
    attempts: int = 10,
) -> bool:
    """Re-initialise the router, from the benchmark images' own statistics, until their scores split exactly.

    Routing decisions only need scores that are apart at each split; router weights change no cost. Each of the
    router's convs in turn gets random weights, then is rescaled and shifted so that its outputs over the benchmark
    images have zero mean and unit standard deviation per channel (the last one: standard deviation 2, so scores
    spread over most of (0, 1) without saturating). Works in place: call it on a copy.

    Args:
        model (DynamicDetectionModel): The model (a copy) whose router to spread.
        score_sets (Callable): Runs the router on every benchmark image set and returns one score tensor per set.
        hard_ratios (Iterable[float]): The ratios whose splits must be exact.
        min_gap (float): Smallest score gap allowed at a split.
        attempts (int): Random restarts before giving up with a warning.

    Returns:
        (bool): Whether the router was changed.
    """
    hard_ratios = list(hard_ratios)
    if all(split_gaps_ok(s, hard_ratios, min_gap) for s in score_sets()):
        return False
    convs = [m for m in model.router.modules() if isinstance(m, nn.Conv2d)]
    for attempt in range(attempts):
        g = torch.Generator().manual_seed(attempt)
        for i, conv in enumerate(convs):
            outs: list[torch.Tensor] = []
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
                if conv.bias is not None:
                    conv.bias.zero_()
            hook = conv.register_forward_hook(lambda m, i, o, outs=outs: outs.append(o.detach().float().flatten(1)))
            try:
                score_sets()
            finally:
                hook.remove()
            out = torch.cat(outs)  # (images, channels)
            gain = (2.0 if i == len(convs) - 1 else 1.0) / out.std(0).clamp_min(1e-12)
            with torch.no_grad():
                conv.weight.mul_(gain.view(-1, *[1] * (conv.weight.ndim - 1)).to(conv.weight))
                if conv.bias is not None:
                    conv.bias.copy_((-out.mean(0) * gain).to(conv.bias))
        if all(split_gaps_ok(s, hard_ratios, min_gap) for s in score_sets()):
            return True
    LOGGER.warning("benchmark: router scores of the benchmark images stay close; some splits may not be exact")
    return True


def _check_split(name: str, got: int, want: int, n: int) -> None:
    if got != want:
        LOGGER.warning(f"{name}: {got}/{n} images went hard instead of {want}/{n} (scores too close at this precision)")
