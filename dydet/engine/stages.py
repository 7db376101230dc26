"""`DynamicYOLO.train` behind the scenes: stage 1, stage 2 and calibration as asked, resume of any stage, run folders.

A *plan* records what the user asked for (`stage`, router settings, `calibrate`, the stage-1 arguments). Every
checkpoint the trainers write carries it (`dydet.engine.checkpointing`), so `resume=True` on any checkpoint of a run
finishes what that run was asked to do, with its own data and settings, and never falls back to a default dataset.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from ultralytics.utils import LOGGER, RANK

from dydet.engine.args import DYDET_ONLY_KEYS, router_train_args
from dydet.engine.checkpointing import RESUME_ALLOWED, resumable, run_info
from dydet.engine.demo import finish_demo
from dydet.engine.distributed import claim_run_dir
from dydet.nn.checkpoint import load_checkpoint
from dydet.nn.transfer import read_pretrained
from dydet.utils.checkpoint import as_write_error, load_raw, remove_abandoned_writes, to_plain
from dydet.utils.errors import ArgumentError, MissingFileError, WriteError
from dydet.utils.files import make_run_dir, remove_if_unused
from dydet.utils.metrics import report_payoff

STAGES = ("all", "1", "2", "calibrate")
ROUTER_KEYS = ("stage2_epochs", "stage2_lr", "stage2_batch")


# ------------------------------------------------------------------------------------------------------------ one fit
def fit(
    yolo: Any, trainer_cls: type, kwargs: dict[str, Any], plan: dict[str, Any] | None = None, pretrained: Any = None
) -> Any:
    """Run one trainer, as `ultralytics.engine.model.Model.train` does, with dydet's safe loading and run folders.

    Unlike the stock method, it never substitutes a default dataset, loads every checkpoint through dydet's safe
    loader, creates the run folder atomically and removes it again when the run fails before leaving anything.

    Args:
        yolo (DynamicModel): The model front end (its `model`, `ckpt`, `overrides`, `callbacks` are used and updated).
        trainer_cls (type): The trainer class.
        kwargs (dict): Training arguments (Ultralytics keys only).
        plan (dict, optional): The run's plan, stored in its checkpoints.
        pretrained (Any, optional): The model(s) already read from the `pretrained=` file(s) of `kwargs`
            (`dydet.engine.args.prepare_train_run`), used instead of reading the file(s) again.

    Returns:
        (Any): The final validation metrics.
    """
    args = {**yolo.overrides, "model": yolo.overrides["model"], "task": "detect", **kwargs, "mode": "train"}
    loaded, pretrained = pretrained, args.setdefault("pretrained", yolo.overrides.get("pretrained", True))
    created = None
    if not args.get("resume") and not args.get("save_dir"):
        if RANK in {-1, 0}:
            folder, new = make_run_dir(
                args.get("project") or Path.cwd() / "runs" / "detect",
                args.get("name") or "train",
                bool(args.get("exist_ok")),
            )
            args["save_dir"] = str(folder)
            created = folder if new else None
        args["save_dir"] = claim_run_dir(args.get("save_dir"))  # the other processes of a group take rank 0's
    try:
        trainer = trainer_cls(overrides=args, _callbacks=yolo.callbacks)
        if RANK in {-1, 0} and (removed := remove_abandoned_writes(Path(trainer.save_dir).parent)):
            LOGGER.info(f"Removed {len(removed)} temporary file(s) left by runs killed while writing")
        trainer.plan = plan
        trainer.pretrained_weights = loaded
        yolo.trainer = trainer
        if not args.get("resume") and yolo.ckpt:
            weights = None if pretrained is False else yolo.model
            if isinstance(pretrained, (str, Path)):  # the R-CNN family reads its own (torchvision) files
                weights = str(pretrained) if yolo.model.own_pretrained else loaded  # read by the front end
                if weights is None:
                    weights = read_pretrained(pretrained)  # one model, or an (easy, hard) pair
            trainer.model = trainer.get_model(weights=weights, cfg=yolo.model.yaml)
            yolo.model = trainer.model
            yolo.predictor = None
        trainer.train()
    except BaseException as e:
        error = as_write_error(e, args.get("save_dir") or "the run folder")  # Ultralytics' own writers (plots) too
        if created is not None:
            remove_if_unused(created, keep_results=not isinstance(error or e, WriteError))
        if error is not None:
            raise error from e
        raise
    # every process of a group goes on with rank 0's checkpoint (finished: Ultralytics' final_eval waits for it)
    if RANK in {-1, 0} or trainer.best.exists() or trainer.last.exists():
        ckpt = trainer.best if trainer.best.exists() else trainer.last
        if not ckpt.exists():
            raise MissingFileError(f"training finished but wrote no checkpoint: expected {trainer.best}")
        yolo.model, yolo.ckpt = load_checkpoint(ckpt)
        yolo.predictor = None
        yolo.overrides = yolo._reset_ckpt_args(yolo.model.args)
        yolo.overrides["model"] = yolo.ckpt_path = str(ckpt)
        yolo.metrics = getattr(trainer.validator, "metrics", None) or yolo.ckpt.get("train_metrics")
    return yolo.metrics


# --------------------------------------------------------------------------------------------------------- the stages
def make_plan(kwargs: dict[str, Any], demo: bool = False) -> dict[str, Any]:
    """Take dydet's stage arguments out of (prepared) training arguments and return the plan.

    Args:
        kwargs (dict): Training arguments; `stage`, `stage2_*`, `calibrate` and `threads` are removed from it.
        demo (bool): The run trains on the embedded demo data (it ends with the demo's predictions and summary).

    Returns:
        (dict): `{"stage", "router", "calibrate", "threads", "demo", "train_args"}`, where `train_args` are the
            remaining arguments.
    """
    stage = str(kwargs.pop("stage", "all"))
    if stage not in STAGES:
        raise ArgumentError(f"stage={stage!r} is invalid: use all, 1, 2 or calibrate")
    router = {k: kwargs.pop(k, None) for k in ROUTER_KEYS}
    calibrate = kwargs.pop("calibrate", True)
    threads = kwargs.pop("threads", None)
    for key in DYDET_ONLY_KEYS:
        kwargs.pop(key, None)
    return {
        "stage": stage,
        "router": router,
        "calibrate": bool(calibrate),
        "threads": threads,
        "demo": bool(demo),
        "train_args": to_plain(kwargs),
    }


def run_plan(
    yolo: Any, plan: dict[str, Any], trainer: type | None = None, start: str | None = None, pretrained: Any = None
) -> Any:
    """Run the stages of `plan` from `start` (default: the plan's first stage).

    Args:
        yolo (DynamicModel): The model front end.
        plan (dict): See `make_plan`.
        trainer (type, optional): A custom stage-1 trainer class.
        start (str, optional): '1', '2' or 'calibrate': where to begin.
        pretrained (Any, optional): The model(s) read from stage 1's `pretrained=` file(s), so they are read once.

    Returns:
        (Any): The last stage's metrics (the calibration record for `stage=calibrate`).
    """
    classes = yolo.task_map["detect"]  # the model family's trainers
    stage, kwargs = plan["stage"], dict(plan["train_args"])
    # dydet's CPU thread count reaches both trainers, which take it out of their overrides before Ultralytics sees it
    threads = {} if plan.get("threads") is None else {"threads": plan["threads"]}
    start = start or ("1" if stage == "all" else stage)
    stage1_dir = None
    if start == "1":
        yolo.metrics = fit(yolo, trainer or classes["trainer"], {**kwargs, **threads}, plan, pretrained=pretrained)
        stage1_dir = Path(yolo.trainer.save_dir)
        report_payoff(yolo.metrics, "after stage 1")
        if stage == "1":
            return yolo.metrics
        threads, kwargs = keep_cpu_setup(yolo.trainer, threads, kwargs)
        start = "2"
    if start == "2":
        if yolo.model.stage < 1:
            raise ArgumentError(
                f"stage 2 needs a stage-1 dydet checkpoint as model=, got '{yolo.overrides.get('model')}' "
                "(an untrained YAML): run 'dydet train stage=1' first, or stage=all"
            )
        if yolo.trainer is not None and Path(yolo.overrides["model"]).parent.parent == Path(yolo.trainer.save_dir):
            kwargs["name"] = Path(yolo.trainer.save_dir).name  # the stage-1 run's actual folder (maybe incremented)
        yolo.metrics = fit(
            yolo, classes["router_trainer"], {**router_train_args(kwargs, plan["router"]), **threads}, plan
        )
        if not plan["calibrate"]:
            return yolo.metrics
        start = "calibrate"
    if yolo.model.stage < 2:
        raise ArgumentError(
            f"calibration needs a trained router (a stage-2 checkpoint), got "
            f"'{yolo.ckpt_path or yolo.overrides.get('model')}' at stage {yolo.model.stage}: "
            "run 'dydet train stage=2' first"
        )
    data = kwargs.get("data") or yolo.overrides.get("data")
    if not data:
        raise ArgumentError("calibration needs the validation data: pass data=path/to/data.yaml")
    if yolo.trainer is not None:
        run = Path(yolo.trainer.save_dir)
    else:  # `<run>/weights/x.pt` -> `<run>`; a checkpoint elsewhere: its own folder
        weights = Path(yolo.ckpt_path).resolve().parent
        run = weights.parent if weights.name == "weights" else weights
    args = {
        "data": data,
        "imgsz": kwargs.get("imgsz"),
        "batch": batch if isinstance(batch := kwargs.get("batch"), int) and batch > 0 else None,  # not AutoBatch (-1)
        "device": kwargs.get("device"),
        "project": str(run),
        "name": "calibration",
        "exist_ok": True,
    }
    if RANK > 0:  # rank 0 calibrates and writes final.pt; the others run its validation (which waits on them) only
        yolo._validate(plots=False, **{k: v for k, v in args.items() if v is not None})
        return yolo.metrics
    calibration = yolo.calibrate(**args)
    if plan.get("demo") and stage == "all" and stage1_dir is not None:
        finish_demo(yolo, data, stage1_dir, imgsz=kwargs.get("imgsz"))
    return yolo.metrics if stage != "calibrate" else calibration


def keep_cpu_setup(
    trainer: Any, threads: dict[str, Any], kwargs: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Give stage 2 the torch threads and dataloader workers stage 1 chose on the CPU, where the user set none.

    The CPU default follows the load average when a trainer starts; read right after stage 1 it counts stage 1's own
    training, so stage 2 would take the machine for busy and switch to a different set-up by itself.

    Args:
        trainer (DynamicTrainer): The stage-1 trainer that just finished.
        threads (dict): `{"threads": n}` when the user set them, else empty.
        kwargs (dict): Stage 1's training arguments.

    Returns:
        (tuple[dict, dict]): The threads and training arguments for stage 2.
    """
    chosen = getattr(trainer, "cpu_threads", None)
    if chosen is None:  # not trained on the CPU
        return threads, kwargs
    kwargs = dict(kwargs)
    if kwargs.get("workers") is None:
        kwargs["workers"] = trainer.args.workers
    return threads or {"threads": chosen}, kwargs


def resume_plan(yolo: Any, resume: Any, kwargs: dict[str, Any]) -> Any:
    """Resume an interrupted run from its checkpoint and finish the stages it was asked for.

    Args:
        yolo (DynamicModel): The model front end (loaded from the checkpoint when `resume` is True).
        resume (Any): True (the loaded checkpoint) or a checkpoint path.
        kwargs (dict): Other arguments: memory/device settings may change (`RESUME_ALLOWED`), and `data` when the
            dataset moved; anything else keeps the run's own value.

    Returns:
        (Any): The final metrics.
    """
    classes = yolo.task_map["detect"]  # the model family's trainers
    path = yolo.ckpt_path if resume is True and yolo.ckpt else resume
    if not isinstance(path, (str, Path)) or not str(path).endswith(".pt"):
        raise ArgumentError(
            "resume=True needs the checkpoint of the interrupted run: dydet train model=path/to/weights/last.pt "
            "resume=True"
        )
    ckpt = load_raw(path)
    info = run_info(ckpt)
    done = 2 if info.get("stage") == 2 else 1
    if not resumable(ckpt):
        raise ArgumentError(
            f"'{path}' is a finished stage-{done} checkpoint: there is nothing to resume. {next_step(path, done)}"
        )
    saved = ckpt.get("train_args") or {}
    plan = info.get("plan") or {
        "stage": str(done),
        "router": dict.fromkeys(ROUTER_KEYS),
        "calibrate": done == 2,
        "train_args": {k: saved.get(k) for k in ("data", "imgsz", "batch", "device", "project", "name")},
    }
    given = {
        k: v for k, v in kwargs.items() if v is not None and (k in RESUME_ALLOWED or k in {"data", "project", "name"})
    }
    plan["train_args"].update(given)
    ignored = sorted(set(kwargs) - set(given) - {"stage", *ROUTER_KEYS, "calibrate"})
    if ignored:
        LOGGER.warning(f"Resume ignores {ignored}: the run continues with its own settings.")
    yolo.metrics = fit(
        yolo, classes["router_trainer" if done == 2 else "trainer"], {**given, "resume": str(path)}, plan
    )
    if yolo.trainer is not None:  # later stages go beside the resumed run, never where the file's plan says
        run = Path(yolo.trainer.save_dir)
        plan["train_args"].update(project=str(run.parent), name=run.name)
    if done == 1 and plan["stage"] == "all":
        return run_plan(yolo, plan, start="2")
    if done == 2 and plan["stage"] in {"all", "2"} and plan["calibrate"]:
        return run_plan(yolo, plan, start="calibrate")
    return yolo.metrics


def next_step(checkpoint: str | Path, done: int) -> str:
    """Return the command that goes on from a finished stage-`done` checkpoint, writing beside its own run.

    The paths are the checkpoint's real ones (its run's `best.pt` when there is one), never the folders named inside
    the file nor Ultralytics' default `runs/detect/train`: stage 2 writes `<run>-router` next to `<run>`, and
    calibration writes into the checkpoint's own run folder.

    Args:
        checkpoint (str | Path): The finished checkpoint (`<run>/weights/last.pt` or `best.pt`).
        done (int): The stage it finished (1 or 2).

    Returns:
        (str): 'Train the router with: dydet train stage=2 model=... project=... name=...' or 'Calibrate with: ...'.
    """
    path = Path(checkpoint).resolve()
    best = path.with_name("best.pt")
    model = best if best.is_file() else path
    if done == 2:
        return f"Calibrate with: dydet train stage=calibrate {shlex.quote(f'model={model}')}"
    # stage 2 writes `<project>/<name>-router`: beside the run, or beside a checkpoint kept outside one
    project, name = (
        (path.parents[2], path.parents[1].name) if path.parent.name == "weights" else (path.parent, path.stem)
    )
    args = (f"model={model}", f"project={project}", f"name={name}")
    return "Train the router with: dydet train stage=2 " + " ".join(shlex.quote(a) for a in args)
