"""Side-by-side timing: interleaved repetitions and medians, so that drift on a shared machine hits all candidates."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


def _sync(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_medians(
    candidates: dict[str, Callable[[], Any]],
    reps: int = 30,
    warmup: int = 3,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Time several callables side by side and return each one's median wall time in milliseconds.

    Every repetition runs every candidate once, in an order rotated by one each repetition, so that slow phases of a
    noisy machine are shared out evenly instead of landing on one candidate.

    Args:
        candidates (dict[str, Callable]): Name -> zero-argument callable to time.
        reps (int): Timed repetitions per candidate.
        warmup (int): Untimed repetitions per candidate first.
        device (torch.device | str, optional): CUDA device to synchronise around each call.
        progress (bool): Show a progress bar over repetitions.

    Returns:
        (dict[str, float]): Name -> median milliseconds.
    """
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in names}
    rounds = range(reps)
    if progress:
        from ultralytics.utils import TQDM

        rounds = TQDM(rounds, desc="timing", total=reps)
    for r in rounds:
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            candidates[name]()
            _sync(device)
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: statistics.median(v) for name, v in times.items()}
