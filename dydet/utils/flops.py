"""GFLOPs of each part of a dynamic model, counted the way Ultralytics counts a static model's."""

from __future__ import annotations

import torch
from torch import nn


class _RouteProbe(nn.Module):
    """Runs one part of a dynamic model so that `thop` counts only what that part executes."""

    def __init__(self, model: nn.Module, part: str):
        super().__init__()
        self.model, self.part = model, part

    def forward(self, x: torch.Tensor):
        if self.part == "b1":
            return self.model._run_b1(x)
        if self.part == "router":
            return self.model.router_scores(x)
        return self.model.forward_routed(x, route=self.part)


def _gflops(module: nn.Module, imgsz: int | list[int], stride: int) -> float:
    import thop

    p = next(module.parameters())
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    ch = module.model.yaml.get("channels", 3)  # not the first conv's input width: W6's first layer is a ReOrg
    im = torch.empty((1, ch, h, w), device=p.device, dtype=p.dtype)
    return thop.profile(module, inputs=[im], stride=stride, verbose=False)[0] / 1e9 * 2


def route_gflops(model: nn.Module, part: str, imgsz: int | list[int] = 640) -> float:
    """Return the GFLOPs of one image through `part` of a `DynamicDetectionModel`.

    Args:
        model (nn.Module): The dynamic model.
        part (str): 'easy' (B1 + H1), 'hard' (B1 + B2 + H2) or 'router' (the router alone, without B1).
        imgsz (int | list[int]): Image size, an int or (h, w).

    Returns:
        (float): GFLOPs, as `ultralytics.utils.torch_utils.get_flops` counts them (2 x MACs).
    """
    if part == "router":  # its cost does not grow with the image: count it on pooled (1x1) inputs, not by scaling
        import thop

        p = model.router.reduce.weight
        pooled = torch.empty((1, p.shape[1], 1, 1), device=p.device, dtype=p.dtype)
        return thop.profile(model.router, inputs=[[pooled]], verbose=False)[0] / 1e9 * 2
    stride = max(int(model.stride.max()), 32)
    return _gflops(_RouteProbe(model, part), imgsz, stride)


def mixed_gflops(easy: float, hard: float, router: float, hard_ratio: float) -> float:
    """Return the mean GFLOPs per image when `hard_ratio` of the images take the hard route (router always runs)."""
    return (1 - hard_ratio) * easy + hard_ratio * hard + router
