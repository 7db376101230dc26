"""GFLOPs of each part of a dynamic model, counted the way Ultralytics counts a static model's."""

from __future__ import annotations

import torch
from torch import nn

from dydet.routing import RoutingSpec


class _RouteProbe(nn.Module):
    """Runs one part of a dynamic model so that `thop` counts only what that part executes."""

    def __init__(self, model: nn.Module, part: str):
        super().__init__()
        self.model, self.part = model, part

    def forward(self, x: torch.Tensor):
        return self.model.routed(x, RoutingSpec.forced(self.part))[0]


def _gflops(module: nn.Module, imgsz: int | list[int], stride: int, ch: int = 3) -> float:
    import thop

    p = next(module.parameters())
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    im = torch.zeros((1, ch, h, w), device=p.device, dtype=p.dtype)  # zeros: no NaN garbage
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
    if part == "router":  # its cost does not grow with the image: count it on pooled (1x1) inputs, not by scaling
        import thop

        p = model.router.reduce.weight
        pooled = torch.empty((1, p.shape[1], 1, 1), device=p.device, dtype=p.dtype)
        return thop.profile(model.router, inputs=[[pooled]], verbose=False)[0] / 1e9 * 2
    stride = max(int(model.stride.max()), 32)
    if part == "router":  # its cost does not grow with the image: count it on pooled (1x1) inputs, not by scaling
        import thop

        p = model.router.reduce.weight
        pooled = torch.empty((1, p.shape[1], 1, 1), device=p.device, dtype=p.dtype)
        return thop.profile(model.router, inputs=[[pooled]], verbose=False)[0] / 1e9 * 2
    return _gflops(_RouteProbe(model, part), imgsz, stride, _input_channels(model))


def static_gflops(model: nn.Module, imgsz: int | list[int] = 640) -> float:
    """Return the GFLOPs of one image through a static detection model, counted like `route_gflops`.

    Unlike `ultralytics.utils.torch_utils.get_flops`, which takes the input width from the first parameter and so
    returns 0 for a model whose first layer has none (YOLOv7-W6 starts with a ReOrg), the input width comes from the
    model's YAML.
    """
    stride = max(int(model.stride.max()), 32)
    return _gflops(model, imgsz, stride, _input_channels(model))


def _input_channels(model: nn.Module) -> int:
    """Return a model's input channels from its YAML (the first conv's input width differs after a ReOrg)."""
    return (getattr(model, "yaml", None) or {}).get("channels", 3)


def mixed_gflops(easy: float, hard: float, router: float, hard_ratio: float) -> float:
    """Return the mean GFLOPs per image when `hard_ratio` of the images take the hard route (router always runs)."""
    return (1 - hard_ratio) * easy + hard_ratio * hard + router
