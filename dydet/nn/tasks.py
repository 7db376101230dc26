"""The DynamicDet detection model: two cascaded backbones, two heads and a router, routed per image in a batch."""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path
from typing import Any

import torch
from torch import nn
from ultralytics.nn.modules import Detect
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils import LOGGER
from ultralytics.utils.torch_utils import initialize_weights

from dydet.nn.builder import build_dual_graph, load_model_yaml
from dydet.nn.family import DetectorFamily
from dydet.nn.hetero import is_hetero, parse_hetero
from dydet.nn.modules import Router
from dydet.nn.parse import parse_model
from dydet.routing import DEFAULT_THRESHOLD, as_routing, take
from dydet.utils.errors import ArgumentError
from dydet.utils.flops import route_gflops
from dydet.utils.loss import DualDetectionLoss, DualE2ELoss, RouterLoss, is_end2end


def raw_feats(out: dict[str, Any]) -> list[torch.Tensor]:
    """Return a Detect head's feature maps from its training output (an end-to-end head nests it per branch)."""
    return out.get("one2many", out)["feats"]


class ParsedDetectionModel(DetectionModel):
    """A `DetectionModel` whose layers dydet's parser builds; the stock init's steps, with hooks where dydet differs.

    `DetectionModel.__init__` cannot be called: it parses with Ultralytics' own `parse_model` (no YOLOv7 modules, no
    dual graph) and computes strides only for `model[-1]` from a single `{"feats"}` output. This init keeps its steps
    and the attributes it sets (`yaml` with `channels`/`nc`, `model`, `save`, `names`, `inplace`, `stride`, head
    strides and biases, initialised weights); subclasses override only `_parse` (what is parsed), `_build_extra`
    (parts outside `model.model`), `heads` and `_head_feats` (which heads get strides, from which outputs).
    """

    dynamic = False  # a dydet dynamic YAML (with a `dynamic:` section) rather than a static one
    default_cfg: str  # the model YAML built when `cfg` is not given (set by each subclass)

    def __init__(self, cfg: str | Path | dict | None = None, ch: int = 3, nc: int | None = None, verbose=True):
        """Build the model from a YAML path, a shipped name (e.g. `dy-yolo11n.yaml`, `yolov7.yaml`) or a model dict.

        Args:
            cfg (str | Path | dict, optional): The model YAML (default: the class's `default_cfg`).
            ch (int): Input channels.
            nc (int, optional): Number of classes, overriding the YAML.
            verbose (bool): Print the layer table and summary.
        """
        nn.Module.__init__(self)
        cfg = self.default_cfg if cfg is None else cfg
        self.yaml = deepcopy(cfg) if isinstance(cfg, dict) else load_model_yaml(cfg, dynamic=self.dynamic)
        self.yaml["channels"] = ch
        if nc and nc != self.yaml["nc"]:
            LOGGER.info(f"Overriding model.yaml nc={self.yaml['nc']} with nc={nc}")
            self.yaml["nc"] = nc
        self.model, self.save = self._parse(ch, verbose)
        self.names = {i: f"{i}" for i in range(self.yaml["nc"])}
        self.inplace = self.yaml.get("inplace", True)
        self._build_extra(ch)
        self._init_heads(ch)
        initialize_weights(self)
        if verbose:
            self.info()
            LOGGER.info("")

    def _parse(self, ch: int, verbose: bool) -> tuple[nn.Sequential, list[int]]:
        """Return `(model, save)` built by dydet's parser from `self.yaml`."""
        return parse_model(self.yaml, ch=ch, verbose=verbose)

    def _build_extra(self, ch: int) -> None:
        """Build what lives beside `model.model` (nothing here), before strides and weights are initialised."""

    @property
    def heads(self) -> tuple[Detect, ...]:
        """Return the Detect heads that get strides and biases (stock: `model[-1]`)."""
        return (self.model[-1],)

    def _head_feats(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """Return each head's raw feature maps for `x`, in `heads` order (training-mode forward)."""
        return [raw_feats(self.forward(x))]

    @property
    def end2end(self) -> bool:
        """Return whether the heads give NMS-free one-to-one outputs (end-to-end heads selected for inference)."""
        return bool(getattr(self.heads[-1], "end2end", False))

    @end2end.setter
    def end2end(self, value: bool) -> None:
        """Select the one-to-one (NMS-free) or one-to-many branch of every end-to-end head (stock: `model[-1]` only)."""
        for head in self.heads:
            if getattr(head, "one2one_cv2", None) is not None:
                head.end2end = value

    @property
    def end2end_heads(self) -> bool:
        """Return whether the heads are end-to-end (YOLO26): one-to-one and one-to-many branches, E2E losses."""
        return is_end2end(self)

    def _init_heads(self, ch: int) -> None:
        """Compute strides and initialise biases of every head, as `DetectionModel.__init__` does for `model[-1]`."""
        s = 256  # 2x the largest stride of a 4-level (P6) model
        self.model.eval()  # avoid changing batch statistics until training begins
        for head in self.heads:
            head.inplace = self.inplace
            head.training = True  # to return the raw feature maps
        with torch.no_grad():
            feats = self._head_feats(torch.zeros(1, ch, s, s))
        for head, f in zip(self.heads, feats):
            head.stride = torch.tensor([s / x.shape[-2] for x in f])
        self.stride = self.heads[-1].stride
        self.model.train()
        for head in self.heads:
            head.bias_init()

    def _apply(self, fn):
        """Apply `fn` to all tensors, including every head's stride/anchor tensors (stock code moves `model[-1]`)."""
        super()._apply(fn)
        for head in self.heads:
            if head is not self.model[-1]:
                head.stride, head.anchors, head.strides = fn(head.stride), fn(head.anchors), fn(head.strides)
        return self

    def set_head_attr(self, **kwargs) -> None:
        """Set attributes (e.g. `max_det`) on every head (stock code sets them on `model[-1]`)."""
        for head in self.heads:
            for k, v in kwargs.items():
                if not hasattr(head, k):
                    LOGGER.warning(f"Head has no attribute '{k}'.")
                    continue
                setattr(head, k, v)


class DynamicDetectionModel(ParsedDetectionModel, DetectorFamily):
    """DynamicDet on an Ultralytics detection YAML: easy route B1 -> H1, hard route B1 -> B2 -> H2, and a router.

    Forward behaviours:
        - training mode: both routes on every image and the router scores, as `{"easy", "hard", "score"}`;
        - eval mode, `model(x, threshold=t)`: B1 and the router run on the whole batch, H1 only on images with
          score >= t, B2 + H2 only on the others; returns the standard Ultralytics eval output `(y, raw)` in the
          original image order (`model.routed(x, routing)` returns it with the batch's `Routing` record);
        - eval mode, `model(x, route="easy" | "hard")`: every image through one route (for measurement).

    As a `DetectorFamily` its trunk is B1 + the router (`run_trunk`, state: the list of saved layer outputs) and its
    tails are H1 and B2 + H2 (`run_tail`); the routing itself is `dydet.routing.route_batch`.

    With end-to-end heads (YOLO26, `end2end: True` in the YAML) each route's training output is
    `{"one2many": ..., "one2one": ...}`, stage 1 trains each route with Ultralytics' E2E loss, and `end2end = True`
    (what `nms=False` sets) makes every route return the one-to-one branch's NMS-free `(B, max_det, 6)` rows.

    Attributes:
        graph (DualGraph): Layer index ranges of B1, the easy route and the hard route.
        router (Router): The easiness-score router on B1's stage outputs (kept outside `model.model`).
        threshold (float): Default score cut when `forward` is not given one.
        calibration (dict | None): Router scores on the validation split and per-route costs, set by calibration.
        stage (int): Training stage reached: 0 untrained, 1 cascade (both routes), 2 router trained.
    """

    dynamic = True
    default_cfg = "dy-yolo11n.yaml"

    def _parse(self, ch: int, verbose: bool) -> tuple[nn.Sequential, list[int]]:
        """Expand the YAML into the dual graph (B1, H1, B2, H2) and parse that (per route scale: `dydet.nn.hetero`)."""
        if is_hetero(self.yaml):
            model, save, self.graph = parse_hetero(self.yaml, ch, verbose)
            return model, save
        expanded, self.graph = build_dual_graph(self.yaml)
        return parse_model(expanded, ch=ch, verbose=verbose)

    def _build_extra(self, ch: int) -> None:
        """Set the routing defaults and build the router on B1's stage outputs."""
        self.threshold = DEFAULT_THRESHOLD
        self.calibration = None
        self.stage = 0  # training stage reached: 0 untrained, 1 cascade (both routes), 2 router
        # outputs to keep while running a route: later layers' inputs, each segment's predecessor, router inputs
        self._keep = frozenset(self.save) | {self.graph.easy.start - 1, *self.graph.stages}
        self.router = Router(self._stage_channels(ch), self.yaml["dynamic"].get("router_reduction", 4))

    # ----------------------------------------------------------------------------------------------------- structure
    @property
    def heads(self) -> tuple[Detect, Detect]:
        """Return the (easy, hard) Detect heads."""
        return self.model[self.graph.easy.stop - 1], self.model[self.graph.hard.stop - 1]

    def _head_feats(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """Return the easy and the hard head's raw feature maps for `x` (both routes run)."""
        out = self.forward_both(x)
        return [raw_feats(out[route]) for route in ("easy", "hard")]

    def route_layers(self, route: str) -> list[int]:
        """Return the indices of `model.model` layers that run for one route ('easy' or 'hard'), B1 included."""
        return [*self.graph.b1, *self.graph.after_b1(route)]

    def _stage_channels(self, ch: int) -> list[int]:
        """Find the router's input widths with a dry run of B1."""
        y, _ = self.run_trunk(torch.zeros(1, ch, 128, 128), score=False)  # >1 value per channel at stride 64 (P6)
        return [y[i].shape[1] for i in self.graph.stages]

    # -------------------------------------------------------------------------------------------------------- weights
    def init_criterion(self):
        """Return the criterion of the stage being trained: both routes' detection losses, or the router loss."""
        if self.stage >= 2:
            return RouterLoss(self)
        return DualE2ELoss(self) if self.end2end_heads else DualDetectionLoss(self)

    def load(self, weights: dict | nn.Module | tuple | list, verbose: bool = True) -> dict | None:
        """Load weights from a dydet model, or initialise the routes from static Ultralytics detection models.

        Args:
            weights (dict | nn.Module | tuple | list): A checkpoint dict or model: a `DynamicDetectionModel` (loaded
                as usual) or a static `DetectionModel` of the same base (copied into both routes, see `load_single`);
                or two static models, the easy route's and the hard route's (e.g. yolo11n and yolo11s for
                dy-yolo11n-s).
            verbose (bool): Log what was transferred.
        """
        pair = isinstance(weights, (tuple, list))
        models = [(w.get("ema") or w["model"]) if isinstance(w, dict) else w for w in (weights if pair else [weights])]
        if not pair and isinstance(models[0], DynamicDetectionModel):
            # Ultralytics counts against `self.model` only; the router lives beside it, so count the whole model
            own, src = self.state_dict(), models[0].float().state_dict()
            n = sum(k in own and own[k].shape == v.shape for k, v in src.items())
            out = super().load(models[0], verbose=False)
            if verbose:
                LOGGER.info(f"Transferred {n}/{len(own)} items from pretrained weights")
            return out
        for model in models:
            if pair and isinstance(model, DynamicDetectionModel):
                raise ArgumentError(
                    "a pretrained pair takes two static detection checkpoints (easy route, hard route); pass a dydet "
                    "checkpoint alone"
                )
            if not isinstance(model, DetectionModel) or type(model.model[-1]) is not Detect:
                raise ArgumentError(
                    f"cannot initialise a dydet model's routes from a {type(model).__name__}: pass Ultralytics "
                    f"*detection* checkpoints of the same base and scale (e.g. yolo11n.pt for dy-yolo11n) or a dydet "
                    f"checkpoint"
                )
        return self.load_single(tuple(models) if pair else models[0], verbose=verbose)

    def load_single(self, single: DetectionModel | tuple, verbose: bool = True) -> dict:
        """Initialise the routes from static detection models, so that at step 0 each route equals its model.

        One model goes into B1/H1 and into B2/H2 (a heterogeneous model such as dy-yolo11n-s: into the route of its
        scale, the other starting from scratch); a pair (easy, hard) into one route each. Every tensor whose shape
        fits is copied and the rest reported per route (e.g. class branches of another class count); the composite
        connections (CBLinear) start at zero, so B2 sees only the image. A backbone tensor that does not fit means
        another base or scale and is an error (see `dydet.nn.transfer`).

        Args:
            single (DetectionModel | tuple): The static model, or the (easy, hard) pair.
            verbose (bool): Log what was transferred.

        Returns:
            (dict): `dydet.nn.transfer.RouteTransfer` per route initialised.
        """
        from dydet.nn.transfer import load_routes

        return load_routes(self, single, verbose=verbose)

    # ------------------------------------------------------------------------------------------------------- running
    def _run(self, layers: range, x: torch.Tensor | None, y: list) -> Any:
        """Run a contiguous range of layers like `BaseModel._predict_once`, reading/writing saved outputs in `y`."""
        if layers.start:
            x = y[layers.start - 1]
        for i in layers:
            m = self.model[i]
            if m.f != -1:
                x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
            x = m(x)
            y[i] = x if i in self._keep else None
        return x

    def tail_inputs(self, route: str) -> list[int]:
        """Return the B1 layer indices whose outputs the layers of one route's tail read (what `run_tail` needs).

        A layer reads `y[j]` for every `j` in its `f` (an int or a list; -1 is the previous layer). Only reads that
        leave the tail's own layer range count; a -1 on its first layer reads the layer just before the range.

        Args:
            route (str): 'easy' or 'hard'.

        Returns:
            (list[int]): Sorted B1 layer indices.
        """
        layers = self.graph.after_b1(route)
        needed = set()
        for i in layers:
            f = self.model[i].f
            for j in [f] if isinstance(f, int) else f:
                src = i - 1 if j == -1 else j
                if src < layers.start:
                    needed.add(src)
        outside = needed - set(self.graph.b1)
        if outside:
            raise ArgumentError(f"the {route} route reads layers {sorted(outside)} outside B1; cannot split it from B1")
        return sorted(needed)

    def run_trunk(self, x: torch.Tensor, score: bool = True) -> tuple[list, torch.Tensor | None]:
        """Run B1 (and the router unless `score=False`) on a batch.

        Args:
            x (torch.Tensor): (B, C, H, W) images.
            score (bool): Also run the router.

        Returns:
            (tuple[list, torch.Tensor | None]): B1's saved outputs by layer index (what the tails read) and the (B,)
                easiness scores, or None.
        """
        y = [None] * len(self.model)
        self._run(self.graph.b1, x, y)
        return y, (self.router([y[i] for i in self.graph.stages]) if score else None)

    def run_tail(self, route: str, state: list, index: torch.Tensor | None = None) -> Any:
        """Run one route's layers after B1 ('easy': H1, 'hard': B2 + H2) on B1's outputs, for the images `index`.

        Args:
            route (str): 'easy' or 'hard'.
            state (list): B1's saved outputs by layer index, from `run_trunk` (entries after B1 are ignored).
            index (torch.Tensor, optional): Batch positions to run (None: the whole batch).

        Returns:
            (Any): The route's Detect output (a raw dict in training mode, `(y, raw)` in eval mode).
        """
        y = [take(state[i], index) if i in self.graph.b1 else None for i in range(len(state))]
        return self._run(self.graph.after_b1(route), None, y)

    def forward_both(self, x: torch.Tensor) -> dict[str, Any]:
        """Run both routes on every image (stage-1/2 training and per-route validation).

        Returns:
            (dict): `easy` and `hard` head outputs (raw dicts in training mode, `(y, raw)` in eval mode) and `score`.
        """
        y, score = self.run_trunk(x)
        easy = self._run(self.graph.easy, None, y)
        hard = self._run(self.graph.hard, None, y)
        return {"easy": easy, "hard": hard, "score": score}

    def forward_routed(self, x: torch.Tensor, threshold: float | None = None, route: str | None = None) -> Any:
        """Route every image of a batch to one route and run only what that route needs (see `routed`).

        Args:
            x (torch.Tensor): (B, C, H, W) images.
            threshold (float, optional): Score cut in [0, 1]; easy if score >= threshold. Defaults to
                `self.threshold`. 0 sends everything easy, 1 everything hard.
            route (str, optional): 'easy' or 'hard' to force one route for the whole batch (the router is skipped).

        Returns:
            (Any): The Detect eval output for the batch, in the original image order.
        """
        return self.routed(x, as_routing(threshold=threshold, route=route or None))[0]

    def predict(
        self,
        x: torch.Tensor,
        profile: bool = False,
        augment: bool = False,
        embed: list | None = None,
        threshold: float | None = None,
        route: str | None = None,
        **kwargs,
    ) -> Any:
        """Run the model: both routes in training mode, per-image routing in eval mode (see the class docstring).

        Args:
            x (torch.Tensor): (B, C, H, W) images.
            profile (bool): Unsupported; ignored with a warning.
            augment (bool): Unsupported (test-time augmentation); ignored with a warning.
            embed (list, optional): Unsupported; ignored with a warning.
            threshold (float, optional): Router score cut in [0, 1] (eval mode).
            route (str, optional): Force 'easy' or 'hard' (eval mode).
            **kwargs (Any): Extra arguments from Ultralytics callers (e.g. `visualize`), ignored.

        Returns:
            (Any): See the class docstring.
        """
        if profile or augment or embed:
            LOGGER.warning("dydet models ignore profile/augment/embed; running a plain forward.")
        if self.training:
            return self.forward_both(x)
        return self.forward_routed(x, threshold=threshold, route=route)

    # ---------------------------------------------------------------------------------------------------- reporting
    def route_summary(self, imgsz: int | list[int] = 640) -> dict[str, dict[str, float]]:
        """Return parameters and GFLOPs of the easy route, the hard route and the router (B1 counted in both routes).

        Args:
            imgsz (int | list[int]): Image size the GFLOPs are computed at.

        Returns:
            (dict): `{"easy": {"params", "gflops"}, "hard": {...}, "router": {...}}`.
        """

        def params(layers: list[int]) -> int:
            return sum(p.numel() for i in layers for p in self.model[i].parameters())

        return {
            "easy": {"params": params(self.route_layers("easy")), "gflops": route_gflops(self, "easy", imgsz)},
            "hard": {"params": params(self.route_layers("hard")), "gflops": route_gflops(self, "hard", imgsz)},
            "router": {
                "params": sum(p.numel() for p in self.router.parameters()),
                "gflops": route_gflops(self, "router", imgsz),
            },
        }

    def info(self, detailed: bool = False, verbose: bool = True, imgsz: int | list[int] = 640):
        """Print a per-route summary (parameters, GFLOPs); return (layers, parameters, gradients, hard GFLOPs)."""
        from ultralytics.utils.torch_utils import get_num_gradients, get_num_params

        if not verbose:
            return None
        summary = self.route_summary(imgsz)
        n_l = sum(1 for m in self.modules() if not m._modules)
        n_p, n_g = get_num_params(self), get_num_gradients(self)
        fused = " (fused)" if self.is_fused() else ""
        name = Path(self.yaml.get("yaml_file", "dy-model")).stem
        LOGGER.info(f"{name} summary{fused}: {n_l:,} layers, {n_p:,} parameters, {n_g:,} gradients")
        for route in ("easy", "hard", "router"):
            s = summary[route]
            LOGGER.info(f"  {route:>6}: {s['params']:>12,} parameters {s['gflops']:>9.2f} GFLOPs @ {imgsz}")
        return n_l, n_p, n_g, summary["hard"]["gflops"]


class StaticDetectionModel(ParsedDetectionModel):
    """A static (single-route) Ultralytics detection model from a YAML that only dydet's parser builds (YOLOv7 family).

    It is an ordinary `DetectionModel` once built (same forward, loss, fuse, export); only the layer parsing differs
    (see `dydet.nn.parse`). It is the baseline of a dydet model of the same family and the model whose checkpoint
    initialises both routes of one (`pretrained=`).
    """

    default_cfg = "yolov7-tiny.yaml"
