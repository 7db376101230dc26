"""Start a dynamic model's routes from static detection models: every tensor whose shape fits, reported per route.

A static model's layer `j` is the base YAML's layer `j`; `DualGraph.copies` says where that layer lives on each route
(B1/H1 for the easy route, B2/H2 for the hard one). Each route takes one static model (`pretrained=n.pt` fills both
routes; `pretrained=n.pt,s.pt` the easy route from the first and the hard route from the second, as a heterogeneous
model such as dy-yolo11n-s needs). A tensor moves when the layer it belongs to exists on the route and the shapes are
equal. Head tensors may not fit (another class count changes the class branch, and at small widths its hidden width
too): they keep their fresh initialisation and are reported. A backbone tensor that does not fit means another family
or scale: that route cannot start from that model (one-line error, or for one checkpoint on a heterogeneous model the
route starts from scratch with a note). Composite connections (CBLinear) start at zero, the router as built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from ultralytics.nn.modules import CBLinear
from ultralytics.utils import LOGGER

from dydet.nn.checkpoint import checkpoint_model, load_checkpoint_dict, require_detection
from dydet.utils.errors import ArgumentError

ROUTES = ("easy", "hard")
SHOWN = 3  # names listed per route in the report


@dataclass
class RouteTransfer:
    """What one static model gives one route: the tensors that fit and those that do not.

    Attributes:
        route (str): 'easy' or 'hard'.
        source (str): The static model's name, for messages.
        total (int): Tensors in the static model.
        pairs (list[tuple[str, str]]): (static key, dynamic key) of every tensor that fits.
        skipped (list[tuple[str, str | None, tuple, tuple | None, bool]]): (static key, dynamic key or None, its
            shape, the dynamic shape or None, whether it is a backbone tensor) of every tensor that does not.
    """

    route: str
    source: str
    total: int = 0
    pairs: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str | None, tuple, tuple | None, bool]] = field(default_factory=list)

    @property
    def misfit(self) -> tuple[str, str | None, tuple, tuple | None, bool] | None:
        """Return the first backbone tensor that does not fit (the route cannot start from this model), or None."""
        return next((s for s in self.skipped if s[4]), None) if self.total else ("<empty>", None, (), None, True)

    def describe(self) -> str:
        """Return the one-line report: counts and the first few skipped names."""
        line = f"{self.route} route <- {self.source}: transferred {len(self.pairs)}/{self.total} tensors"
        if self.skipped:
            names = ", ".join(s[0] for s in self.skipped[:SHOWN]) + (", ..." if len(self.skipped) > SHOWN else "")
            line += f", skipped {len(self.skipped)} that do not fit (kept as initialised): {names}"
        return line


def source_name(model: nn.Module) -> str:
    """Return a static model's name for messages, e.g. 'yolo11n' (from its YAML file)."""
    yaml = getattr(model, "yaml", None) or {}
    stem = Path(str(yaml.get("yaml_file") or type(model).__name__)).stem
    return stem


def route_static_name(model: nn.Module, route: str) -> str:
    """Return the static model a route of `model` reproduces, e.g. 'yolo11s' for the hard route of dy-yolo11n-s."""
    yaml = model.yaml
    base = yaml.get("dynamic", {}).get("base") or "the base model"
    scale = yaml.get("hard_scale") if route == "hard" and yaml.get("hard_scale") else yaml.get("scale")
    return f"{base}{scale or ''}"


def plan(model: nn.Module, static: nn.Module, route: str) -> RouteTransfer:
    """Match every tensor of `static` with its place on one route of `model`, without copying anything.

    Args:
        model (DynamicDetectionModel): The dynamic model.
        static (DetectionModel): The static model.
        route (str): 'easy' or 'hard'.

    Returns:
        (RouteTransfer): What fits and what does not.
    """
    nb = len(model.yaml["backbone"])
    where = {base: (easy if route == "easy" else hard) for base, easy, hard in model.graph.copies}
    src, dst = static.state_dict(), model.state_dict()
    out = RouteTransfer(route, source_name(static), total=len(src))
    for key, value in src.items():
        parts = key.split(".", 2)
        base = int(parts[1]) if len(parts) == 3 and parts[0] == "model" and parts[1].isdigit() else None
        name = f"model.{where[base]}.{parts[2]}" if base in where else None
        target = dst.get(name) if name else None
        if target is not None and target.shape == value.shape:
            out.pairs.append((key, name))
        else:
            shape = tuple(target.shape) if target is not None else None
            out.skipped.append((key, name, tuple(value.shape), shape, base is None or base < nb))
    return out


def copy_route(model: nn.Module, static: nn.Module, transfer: RouteTransfer) -> None:
    """Copy the tensors `transfer` found fitting from `static` into `model`."""
    src, dst = static.state_dict(), model.state_dict()
    with torch.no_grad():
        for key, name in transfer.pairs:
            dst[name].copy_(src[key].to(dst[name].dtype))


def zero_links(model: nn.Module) -> None:
    """Zero the composite connections (CBLinear), so that B2 at first sees only the image, like a static model."""
    with torch.no_grad():
        for m in model.model:
            if isinstance(m, CBLinear):
                m.conv.weight.zero_()
                m.conv.bias.zero_()


def _misfit_text(t: RouteTransfer) -> str:
    key, name, a, b, _ = t.misfit
    return f"{key} has shape {a}, {name or 'no layer'} needs {b}" if b else f"{key} has no place in this model"


def load_routes(model: nn.Module, weights: nn.Module | tuple | list, verbose: bool = True) -> dict[str, RouteTransfer]:
    """Initialise the routes of `model` from one static model (both routes) or a pair (easy route, hard route).

    Args:
        model (DynamicDetectionModel): The dynamic model, changed in place.
        weights (nn.Module | tuple | list): A static detection model, or two: the easy route's and the hard route's.
        verbose (bool): Log what each route took and skipped.

    Returns:
        (dict[str, RouteTransfer]): What each route took from which model (a route left out starts from scratch).

    Raises:
        ArgumentError: A route cannot start from the model given for it (a backbone tensor does not fit), a pair is
            in the wrong order, or more than two models are given.
    """
    name = Path(str(model.yaml.get("yaml_file") or "this model")).name
    want = {r: route_static_name(model, r) for r in ROUTES}
    singles = [w.float() for w in (weights if isinstance(weights, (tuple, list)) else [weights])]
    if len(singles) not in (1, 2):
        raise ArgumentError(
            f"pretrained= takes one checkpoint (both routes) or two (easy route, hard route), got {len(singles)}"
        )
    if len(singles) == 2:
        plans = {r: plan(model, s, r) for r, s in zip(ROUTES, singles)}
        if any(p.misfit for p in plans.values()):
            swapped = [plan(model, s, r) for r, s in zip(ROUTES, reversed(singles))]
            if not any(p.misfit for p in swapped):
                raise ArgumentError(
                    f"the pretrained pair is in the wrong order for {name}: give the {want['easy']} checkpoint first "
                    f"(easy route), then the {want['hard']} one (hard route)"
                )
            route = next(r for r in ROUTES if plans[r].misfit)
            raise ArgumentError(
                f"the pretrained pair does not fit {name}: its {route} route needs a {want[route]} checkpoint "
                f"({_misfit_text(plans[route])}); use the same base and scale: {want['easy']}, then {want['hard']}"
            )
    else:
        plans = {r: plan(model, singles[0], r) for r in ROUTES}
        if all(p.misfit for p in plans.values()):
            raise ArgumentError(
                f"the single model does not match {name}: {_misfit_text(plans['easy'])}; use a checkpoint of the "
                f"same base and scale ({' or '.join(dict.fromkeys(want.values()))})"
            )
        for route, other in zip(ROUTES, reversed(ROUTES)):
            if plans[route].misfit:
                del plans[route]
                if verbose:
                    LOGGER.info(
                        f"pretrained: {source_name(singles[0])} fits only the {other} route of {name}; the {route} "
                        f"route ({want[route]}) starts from scratch (pass pretrained=<{want['easy']}>,"
                        f"<{want['hard']}> to start both)"
                    )
    source = dict(zip(ROUTES, singles * 2 if len(singles) == 1 else singles))
    for route, t in plans.items():
        copy_route(model, source[route], t)
        if verbose:
            LOGGER.info(f"pretrained: {t.describe()}")
    zero_links(model)
    return plans


def is_pair(pretrained: Any) -> bool:
    """Return whether a `pretrained=` value names two checkpoints ('n.pt,s.pt', or a tuple/list of two)."""
    if isinstance(pretrained, (tuple, list)):
        return True
    return isinstance(pretrained, (str, Path)) and "," in str(pretrained)


def pretrained_paths(pretrained: str | Path | tuple | list) -> list[str]:
    """Split a `pretrained=` value into checkpoint paths: 'n.pt,s.pt' -> ['n.pt', 's.pt'], 'n.pt' -> ['n.pt']."""
    items = pretrained if isinstance(pretrained, (tuple, list)) else str(pretrained).split(",")
    paths = [str(p).strip() for p in items if str(p).strip()]
    if not 1 <= len(paths) <= 2:
        raise ArgumentError(
            f"pretrained={pretrained!r}: give one checkpoint (both routes) or two, comma-separated (easy route, then "
            "hard route), e.g. pretrained=yolo11n.pt,yolo11s.pt"
        )
    return paths


def read_pretrained(pretrained: str | Path | tuple | list) -> nn.Module | tuple[nn.Module, ...]:
    """Load the model(s) a `pretrained=` value names, with dydet's safe loader: one model, or a pair as a tuple.

    Each file is read once and refused with a one-line error when it is missing, unreadable or not a detection model.
    """
    models = []
    for path in pretrained_paths(pretrained):
        ckpt = load_checkpoint_dict(path)
        require_detection(ckpt.get("ema") or ckpt.get("model"), path)
        models.append(checkpoint_model(ckpt))
    return tuple(models) if is_pair(pretrained) else models[0]
