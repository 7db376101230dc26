"""Defaults and checks applied to training arguments before they reach Ultralytics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ultralytics.utils import LOGGER

from dydet.cfg import arg_names
from dydet.cfg.training import ROUTER_DEFAULTS, ROUTER_FIXED
from dydet.data.shortcuts import embedded_name, resolve_data
from dydet.nn.transfer import read_pretrained
from dydet.routing import resolve_routing
from dydet.utils.inputs import check_data

# dydet's own arguments (dydet/cfg/default.yaml): consumed by dydet, never passed on (Ultralytics rejects unknown keys).
DYDET_ONLY_KEYS = arg_names()

# Used with `data=demo` or no `data=`: the embedded demo dataset with settings that train in minutes on a 2-core CPU
# (measured figures: docs/BENCHMARKS.md, "The demo job"): small images, small batches with an optimizer step after
# every batch (`nbs=batch`; Ultralytics' nbs=64 would step only every 8th), AdamW, no per-epoch validation (both
# stages validate once, at their end), and a router trained longer at a lower lr than dydet's stage-2 default, which
# ranks the demo's images better (docs/ROUTER.md).
DEMO_TRAIN_DEFAULTS = {
    "imgsz": 96,
    "batch": 8,
    "nbs": 8,
    "optimizer": "AdamW",
    "val": False,
    "stage2_epochs": 8,
    "stage2_lr": 3e-4,
}
# The demo's own model (what `dydet train` builds without model=): a scale pair whose routes start from the static
# yolo11n and yolo11s that `scripts/demo_statics.py` trained on the demo's training split and dydet ships
# (`DEMO_WEIGHTS`), so the hard route's lead is the lead of the larger scale and not the luck of a short schedule.
# Stage 1 then fine-tunes both routes and the composite links briefly at a low lr, without warm-up (Ultralytics'
# warm-up starts the biases at lr 0.1, which would undo the pretrained heads) and without mosaic.
DEMO_MODEL = "dy-yolo11n-s.yaml"
DEMO_WEIGHTS = tuple(Path(__file__).resolve().parents[1] / "assets" / "demo" / f for f in ("yolo11n.pt", "yolo11s.pt"))
DEMO_FINETUNE_DEFAULTS = {"epochs": 2, "lr0": 5e-4, "warmup_epochs": 0, "close_mosaic": 2}
# Any other model on the demo data starts from scratch: a longer stage 1 at a higher lr.
DEMO_SCRATCH_DEFAULTS = {"epochs": 11, "lr0": 0.002, "warmup_epochs": 1, "close_mosaic": 2}


def uses_demo_data(kwargs: dict[str, Any], overrides: dict[str, Any]) -> bool:
    """Return whether a training run gets the embedded demo dataset (`data=demo`, or no `data=` and not resuming).

    Args:
        kwargs (dict): Arguments given by the user.
        overrides (dict): The model's own overrides (e.g. `data` from a checkpoint).

    Returns:
        (bool): True when `prepare_train_args` trains on the demo dataset with `DEMO_TRAIN_DEFAULTS`.
    """
    if kwargs.get("data") is None and not kwargs.get("resume") and overrides.get("data") is None:
        return True
    return embedded_name(kwargs.get("data")) == "demo"


def prepare_train_args(
    kwargs: dict[str, Any], overrides: dict[str, Any], check_pretrained: Any = None, model_yaml: str | None = None
) -> dict[str, Any]:
    """Return `prepare_train_run`'s arguments alone (the `pretrained=` file is still read, and so checked)."""
    return prepare_train_run(kwargs, overrides, check_pretrained, model_yaml)[0]


def demo_defaults(kwargs: dict[str, Any], model_yaml: str | None) -> dict[str, Any]:
    """Return the demo recipe for a model: the demo model starts from the shipped statics, any other from scratch.

    Args:
        kwargs (dict): Arguments given by the user (`pretrained=` decides whether the shipped statics are used).
        model_yaml (str, optional): File name of the YAML the model was built from (None: a checkpoint).

    Returns:
        (dict): The defaults to fill in where the user gave no value.
    """
    if model_yaml is not None and Path(model_yaml).name == DEMO_MODEL and kwargs.get("pretrained") is None:
        return {**DEMO_TRAIN_DEFAULTS, **DEMO_FINETUNE_DEFAULTS, "pretrained": ",".join(map(str, DEMO_WEIGHTS))}
    return {**DEMO_TRAIN_DEFAULTS, **DEMO_SCRATCH_DEFAULTS}


def prepare_train_run(
    kwargs: dict[str, Any], overrides: dict[str, Any], check_pretrained: Any = None, model_yaml: str | None = None
) -> tuple[dict[str, Any], Any]:
    """Fill in dydet's training defaults and read the files a run starts from early, with clear errors.

    Args:
        kwargs (dict): Arguments given by the user, checked by `dydet.cfg.check_args`.
        overrides (dict): The model's own overrides (e.g. `data` from a checkpoint).
        check_pretrained (Callable, optional): The model family's check of a `pretrained=` file (R-CNN: torchvision
            weights); default: an Ultralytics / dydet detection checkpoint, read here.
        model_yaml (str, optional): File name of the YAML the model was built from (None: a checkpoint); on the demo
            data it picks the demo recipe (`demo_defaults`).

    Returns:
        (tuple[dict, Any]): The arguments to train with, and the model(s) read from `pretrained=` (None when it names
            no file or the family reads its own), to hand to the run so that the file is read once.
    """
    kwargs = dict(kwargs)
    if uses_demo_data(kwargs, overrides):  # settings that train the demo on a laptop CPU in minutes
        if kwargs.get("data") is None:
            kwargs["data"] = "demo"
            LOGGER.info("dydet: no data= given, training on the embedded demo dataset (data=demo)")
        for k, v in demo_defaults(kwargs, model_yaml).items():
            if kwargs.get(k) is None:  # unset, or None as dydet's cfg defaults leave its own keys (stage2_epochs)
                kwargs[k] = v
    if kwargs.get("data") is not None:
        kwargs["data"] = resolve_data(kwargs["data"])  # data=tiny|demo|bench: the embedded datasets
    data = kwargs.get("data") or overrides.get("data")
    if data is not None and not kwargs.get("resume"):
        check_data(data)  # bad YAML, missing splits, URLs, labels beyond nc: one-line errors before any run folder
    kwargs["project"] = kwargs.get("project") or str(Path.cwd() / "runs" / "detect")  # absolute: check_args
    pretrained, weights = kwargs.get("pretrained"), None
    if isinstance(pretrained, (str, Path)) and check_pretrained is not None:
        check_pretrained(pretrained)
    elif isinstance(pretrained, (str, Path)):
        weights = read_pretrained(pretrained)  # one checkpoint or two ('easy.pt,hard.pt'), each checked as it is read
    return kwargs, weights


def router_train_args(kwargs: dict[str, Any], router: dict[str, Any]) -> dict[str, Any]:
    """Return the stage-2 arguments: the stage-1 ones, dydet's router settings, and `<name>-router` as run name.

    Args:
        kwargs (dict): The (prepared) training arguments.
        router (dict): `stage2_epochs`, `stage2_lr`, `stage2_batch` as given (None: `ROUTER_DEFAULTS`).

    Returns:
        (dict): Arguments for `RouterTrainer`.
    """
    given = {"epochs": router["stage2_epochs"], "lr0": router["stage2_lr"], "batch": router["stage2_batch"]}
    args = {k: v for k, v in kwargs.items() if k not in {"pretrained", "resume", "freeze"}}
    args.update({k: ROUTER_DEFAULTS[k] if v is None else v for k, v in given.items()}, **ROUTER_FIXED)
    args["name"] = f"{kwargs.get('name') or 'train'}-router"
    return args


ROUTING_KEYS = ("threshold", "hard_ratio", "route", "gflops", "latency")


def pop_routing(model: Any, kwargs: dict[str, Any], device: Any = None, precision: str | None = None):
    """Take the routing arguments out of `kwargs` and resolve them, once, into a `RoutingSpec` (or None).

    `threshold`, `hard_ratio`, `route`, `gflops` and `latency` are removed from `kwargs` (see
    `dydet.routing.resolve_routing` for how they combine and the errors raised).

    Args:
        model (Any): The dynamic model (PyTorch or an export runtime); its `calibration` serves all but `threshold`.
        kwargs (dict): The caller's arguments, modified in place.
        device (Any, optional): Where the call will run, checked against a `latency` budget's calibration.
        precision (str, optional): 'fp32' or 'fp16' the call runs at, checked likewise.

    Returns:
        (RoutingSpec | None): The routing, or None when none was given (the caller's default applies).
    """
    given = {k: kwargs.pop(k, None) for k in ROUTING_KEYS}
    return resolve_routing(getattr(model, "calibration", None), **given, device=device, precision=precision)


def drop_dydet_args(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Remove dydet's own arguments from `kwargs` (Ultralytics rejects them).

    Args:
        kwargs (dict): The caller's arguments, modified in place.

    Returns:
        (dict): `kwargs`.
    """
    for key in DYDET_ONLY_KEYS:
        kwargs.pop(key, None)
    return kwargs
