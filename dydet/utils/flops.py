"""GFLOPs of each part of a dynamic model, counted the way Ultralytics counts a static model's."""

from __future__ import annotations

import torch
from torch import nn

from dydet.engine.routing import RoutingSpec


class _RouteProbe(nn.Module):
    """Runs one part of a dynamic model so that `thop` counts only what that part executes."""

    def __init__(self, model: nn.Module, part: str):
        super().__init__()
        self.model, self.part = model, part

    def forward(self, x: torch.Tensor):
        if self.part == "trunk":
            return self.model.run_trunk(x, score=False)[0]
        if self.part == "router":
            return self.model.run_trunk(x)[1]
        return self.model.routed(x, RoutingSpec.forced(self.part))[0]


def _gflops(module: nn.Module, imgsz: int | list[int], stride: int) -> float:
    import thop

    p = next(module.parameters())
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    im = torch.empty((1, p.shape[1], h, w), device=p.device, dtype=p.dtype)
    return thop.profile(module, inputs=[im], stride=stride, verbose=False)[0] / 1e9 * 2


def route_gflops(model: nn.Module, part: str, imgsz: int | list[int] = 640) -> float:
    """Return the GFLOPs of one image through `part` of a dynamic model (any `DetectorFamily`).

    Args:
        model (nn.Module): The dynamic model.
        part (str): 'easy' (B1 + H1), 'hard' (B1 + B2 + H2) or 'router' (the router alone, without the
            shared trunk).
        imgsz (int | list[int]): Image size, an int or (h, w).

    Returns:
        (float): GFLOPs, as `ultralytics.utils.torch_utils.get_flops` counts them (2 x MACs).
    """
    stride = max(int(model.stride.max()), 32)
    if part == "router":
        trunk = _gflops(_RouteProbe(model, "trunk"), imgsz, stride)
        return _gflops(_RouteProbe(model, "router"), imgsz, stride) - trunk
    return _gflops(_RouteProbe(model, part), imgsz, stride)


def mixed_gflops(easy: float, hard: float, router: float, hard_ratio: float) -> float:
    """Return the mean GFLOPs per image when `hard_ratio` of the images take the hard route (router always runs)."""
    return (1 - hard_ratio) * easy + hard_ratio * hard + router
