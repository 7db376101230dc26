"""Small PyTorch helpers shared by calibration, benchmarking and export."""

from __future__ import annotations

from copy import deepcopy

from torch import nn


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
