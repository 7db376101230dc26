"""Defaults and checks applied to training arguments before they reach Ultralytics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ultralytics.utils import LOGGER

from dydet.cfg import dydet_arg_names

# dydet's own arguments (cfg/default.yaml): consumed by dydet, never passed on (Ultralytics rejects unknown keys).
DYDET_ONLY_KEYS = dydet_arg_names()

# Used when no `data=` is given: the embedded demo dataset with settings that train in minutes on a laptop CPU.
DEMO_TRAIN_DEFAULTS = {"epochs": 18, "imgsz": 160, "batch": 16, "workers": 2, "close_mosaic": 4, "stage2_epochs": 4}


def prepare_train_args(kwargs: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Fill in dydet's training defaults and check file arguments early, with clear errors.

    Args:
        kwargs (dict): Arguments given by the user.
        overrides (dict): The model's own overrides (e.g. `data` from a checkpoint).

    Returns:
        (dict): The arguments to train with.
    """
    from dydet.utils.checkpoint import load_checkpoint_dict, require_detection

    kwargs = dict(kwargs)
    if kwargs.get("data") is None and not kwargs.get("resume") and overrides.get("data") is None:
        from dydet.data.synthetic import make_dataset

        kwargs["data"] = str(make_dataset("demo"))
        for k, v in DEMO_TRAIN_DEFAULTS.items():
            kwargs.setdefault(k, v)
        LOGGER.info(f"dydet: no data= given, training on the embedded demo dataset {kwargs['data']}")
    data = kwargs.get("data") or overrides.get("data")
    if data is not None and not kwargs.get("resume"):
        from dydet.utils.inputs import check_data

        check_data(data)  # bad YAML, missing splits, URLs, labels beyond nc: one-line errors before any run folder
    project = kwargs.get("project")
    kwargs["project"] = str(Path(project).resolve()) if project else str(Path.cwd() / "runs" / "detect")
    pretrained = kwargs.get("pretrained")
    if isinstance(pretrained, (str, Path)) and not isinstance(pretrained, bool):
        ckpt = load_checkpoint_dict(pretrained)  # fails early and clearly on a missing or unreadable file
        require_detection(ckpt.get("ema") or ckpt.get("model"), pretrained)  # ... and on a non-detection model
    return kwargs


def router_train_args(kwargs: dict[str, Any], router: dict[str, Any]) -> dict[str, Any]:
    """Return the stage-2 arguments: the stage-1 ones, dydet's router settings, and `<name>-router` as run name.

    Args:
        kwargs (dict): The (prepared) training arguments.
        router (dict): `stage2_epochs`, `stage2_lr`, `stage2_batch` as given (None: `ROUTER_DEFAULTS`).

    Returns:
        (dict): Arguments for `RouterTrainer`.
    """
    from dydet.engine.router_trainer import ROUTER_DEFAULTS, ROUTER_FIXED

    given = {"epochs": router["stage2_epochs"], "lr0": router["stage2_lr"], "batch": router["stage2_batch"]}
    args = {k: v for k, v in kwargs.items() if k not in {"pretrained", "resume", "freeze"}}
    args.update({k: ROUTER_DEFAULTS[k] if v is None else v for k, v in given.items()}, **ROUTER_FIXED)
    args["name"] = f"{kwargs.get('name') or 'train'}-router"
    return args


def pop_routing_args(model: Any, kwargs: dict[str, Any]) -> tuple[float | None, str | None]:
    """Take `threshold` / `hard_ratio` / `route` out of `kwargs`, validated, and drop dydet's other arguments.

    What is left in `kwargs` can go to Ultralytics; a relative `project` is made absolute.

    Args:
        model (Any): The dynamic model (PyTorch or ONNX runtime); its calibration serves `hard_ratio`.
        kwargs (dict): The caller's arguments, modified in place.

    Returns:
        (tuple[float | None, str | None]): The threshold (None: the model's own) and the forced route (or None).
    """
    from dydet.engine.calibration import resolve_threshold
    from dydet.utils.checks import check_route

    route = check_route(kwargs.pop("route", None))
    threshold = resolve_threshold(model, kwargs.pop("threshold", None), kwargs.pop("hard_ratio", None))
    for key in DYDET_ONLY_KEYS:
        kwargs.pop(key, None)
    if kwargs.get("project"):
        kwargs["project"] = str(Path(kwargs["project"]).resolve())
    return threshold, route
