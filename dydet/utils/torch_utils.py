"""Small PyTorch helpers shared by calibration, benchmarking and export."""

from __future__ import annotations

import os
from copy import deepcopy

import torch
from torch import nn

# Ultralytics caps its own worker/thread count (`NUM_THREADS`) at 8; dydet's CPU training default keeps that cap.
MAX_DEFAULT_THREADS = 8
# Dataloader workers for CPU training on a busy machine when `workers=` is not given (Ultralytics forces 0 on CPU): one
# process prepares (mosaic, augmentation) the next batches while the torch threads compute. On an idle machine all
# cores as torch threads and no worker train faster (docs/BENCHMARKS.md, "Training throughput on the CPU: threads and
# workers").
CPU_TRAIN_WORKERS = 1


def cpu_is_busy() -> bool:
    """Return whether more work is runnable than there are cores (1-minute load average above the usable cores).

    On a busy machine every parallel region of a multi-threaded step waits for a descheduled thread, so dydet then
    trains with fewer threads and a dataloader worker (`default_cpu_workers`).
    """
    try:
        return os.getloadavg()[0] > usable_cpu_cores()
    except (AttributeError, OSError):  # no load average (Windows): assume busy, the safer choice
        return True


def default_cpu_workers() -> int:
    """Return dydet's dataloader workers for CPU training: `CPU_TRAIN_WORKERS` on a busy machine, else 0.

    Measured on 2 cores (docs/BENCHMARKS.md, "Training throughput on the CPU: threads and workers"): idle, 2 threads
    without a worker train 1.28x (stage 1) and 1.44x (stage 2) faster than 1 thread + 1 worker; busy (load average
    13-15), 1 thread + 1 worker are the fastest and 2 threads fall to 0.5x. Pass `workers=` and `threads=` to pin them
    (e.g. for bitwise reproducible runs: the thread count changes floating-point summation order).
    """
    return CPU_TRAIN_WORKERS if cpu_is_busy() else 0


def usable_cpu_cores() -> int:
    """Return the number of CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def set_cpu_threads(device: torch.device, threads: int | None = None, workers: int = 0) -> int | None:
    """Set torch's intra-op thread count for training on CPU; leave other devices alone.

    Ultralytics' `select_device` sets `cores - 1` threads on CPU and its trainer runs without dataloader workers, so a
    2-core machine computes and loads data on one core. dydet's default fills the machine: `cores - workers` torch
    threads (at least 1, at most `MAX_DEFAULT_THREADS`) next to the dataloader workers.

    Args:
        device (torch.device): The training device.
        threads (int, optional): Thread count; None: the default above.
        workers (int): Dataloader worker processes running beside the training threads.

    Returns:
        (int | None): The thread count set, or None when `device` is not the CPU.
    """
    if device.type != "cpu":
        return None
    n = int(threads) if threads else max(1, min(usable_cpu_cores() - workers, MAX_DEFAULT_THREADS))
    torch.set_num_threads(n)
    return n


def fused_eval_copy(model: nn.Module) -> nn.Module:
    """Return a fused, eval-mode, gradient-free copy of a model, as deployment runs it (the model is left untouched).

    Ultralytics' predictor and validator fuse Conv+BN before inference, so costs (GFLOPs, latency) are measured on this
    copy; it stays on the model's device and in its dtype.

    Args:
        model (nn.Module): Any model; fused when it has a `fuse` method.

    Returns:
        (nn.Module): The copy.
    """
    m = deepcopy(model).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m.fuse(verbose=False) if hasattr(m, "fuse") else m
