"""How dydet's trainers write and read their checkpoints: weights-only, atomically, with what resuming needs.

`SafeCheckpoints` overrides the few `BaseTrainer` methods that save or load checkpoints, so that every file a dydet
trainer writes loads with `torch.load(weights_only=True)` (see `dydet.utils.checkpoint`), goes to a temporary file
that is flushed and renamed over the old one (a kill at any moment leaves the old or the new file), and carries what
Ultralytics does not save but an exact resume needs:

- ``dydet["plan"]``: the stages the user asked for (`stage`, router settings, `calibrate`) and the stage-1 arguments,
  so that resuming a stage-1 run of ``stage=all`` goes on with stage 2 and calibration on the same data;
- ``dydet["rng"]``: the python, numpy, torch (CPU and CUDA) random states and the training loader's generator,
  restored when the resumed run starts its next epoch;
- ``dydet["router_median"]``: stage 2's running median of `L1 - L2` (the router loss' offset Δ);
- ``dydet["train_state"]``: the fp32 weights being trained (Ultralytics resumes from the fp16 EMA), and the
  optimizer state in fp32 (Ultralytics stores fp16, where Adam's second moments underflow to zero).

Finished checkpoints (`strip_optimizer`) drop the optimizer, `rng` and `train_state` again.
"""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path
from typing import Any

import torch
from ultralytics.utils import DEFAULT_CFG_DICT, DEFAULT_CFG_KEYS, LOGGER, RANK, __version__
from ultralytics.utils.torch_utils import unwrap_model

from dydet.nn.checkpoint import (
    checkpoint_model,
    load_checkpoint_dict,
    model_record,
    save_checkpoint,
    serialize_checkpoint,
)
from dydet.nn.transfer import read_pretrained
from dydet.utils.checkpoint import (
    atomic_write_bytes,
    load_raw,
    remove_partial_writes,
    rng_state,
    set_rng_state,
    to_plain,
)
from dydet.utils.errors import CheckpointError, MissingFileError
from dydet.utils.files import resume_folder

# Arguments a resumed run may change (as Ultralytics' `check_resume` allows): memory, device, logging.
RESUME_ALLOWED = frozenset(
    {"imgsz", "batch", "device", "close_mosaic", "save_period", "workers", "cache", "patience", "time", "val", "plots"}
)

# Arguments a resume takes as given without a warning: what to resume and where it writes.
RESUME_KEPT = frozenset({"model", "data", "mode", "resume", "pretrained", "save_dir", "project", "name"})


def resumable(ckpt: dict[str, Any]) -> bool:
    """Return whether a checkpoint is an unfinished training checkpoint (epoch and optimizer state present)."""
    return ckpt.get("epoch", -1) >= 0 and ckpt.get("optimizer") is not None


def run_info(ckpt: dict[str, Any]) -> dict[str, Any]:
    """Return the dydet-owned part of a checkpoint (`stage` trained, `plan`, `rng`, ...), empty for other files."""
    info = ckpt.get("dydet")
    return info if isinstance(info, dict) else {}


class SafeCheckpoints:
    """Mixin for `BaseTrainer` subclasses: weights-only, atomic checkpoints, and resume through dydet's loader.

    Attributes:
        plan (dict | None): What the user asked `DynamicYOLO.train` for, stored in every checkpoint (see module doc).
    """

    plan: dict[str, Any] | None = None
    pretrained_weights: Any = None  # the model(s) the front end already read from `pretrained=`; None: read it here
    _pending_rng: dict[str, Any] | None = None
    run_workers: int | None = None  # a resumed run's dataloader workers (its checkpoint's, or resume's workers=)

    # ------------------------------------------------------------------------------------------------------- saving
    def _checkpoint_extras(self) -> dict[str, Any]:
        """Return the dydet-owned checkpoint entry."""
        model = unwrap_model(self.model)
        extras = {
            "stage": 2 if getattr(model, "stage", 1) >= 2 else 1,
            "plan": to_plain(self.plan) if self.plan else None,
            "rng": rng_state(_shuffle_generator(getattr(self, "train_loader", None))),
        }
        # the weights being trained (Ultralytics resumes from the fp16 EMA instead): a resumed run continues exactly
        extras["train_state"] = {k: v.detach().float().cpu().clone() for k, v in model.state_dict().items()}
        median = getattr(getattr(model, "criterion", None), "diffs", None)
        if median is not None and getattr(median, "buffer", None) is not None:
            extras["router_median"] = {"buffer": median.buffer.cpu(), "count": median.count, "pos": median.pos}
        return extras

    def save_model(self) -> bool:
        """Save `last.pt` (and `best.pt`, `epochN.pt`) in the weights-only form, each written atomically.

        Same content as Ultralytics' checkpoints (EMA in fp16, optimizer, scaler, args, metrics) plus `dydet`.
        """
        from datetime import datetime

        ema = self.ema.ema
        if not all(torch.isfinite(v).all() for v in ema.state_dict().values() if isinstance(v, torch.Tensor)):
            model_sd = unwrap_model(self.model).state_dict()  # resync NaN/Inf EMA tensors from the live model
            for k, v in ema.state_dict().items():
                if isinstance(v, torch.Tensor) and not torch.isfinite(v).all() and torch.isfinite(model_sd[k]).all():
                    v.copy_(model_sd[k])
        state = {k: v.detach().half() if v.is_floating_point() else v.detach() for k, v in ema.state_dict().items()}
        for v in state.values():
            if v.is_floating_point():
                torch.nan_to_num_(v)
        record = model_record(ema)
        record["state_dict"] = state
        ckpt = {
            "epoch": self.epoch,
            "best_fitness": self.best_fitness,
            "stopper": {"best_fitness": self.stopper.best_fitness, "best_epoch": self.stopper.best_epoch},
            "model": None,
            "ema": record,
            "updates": self.ema.updates,
            "optimizer": deepcopy(self.optimizer.state_dict()),  # fp32: fp16 Adam moments underflow to 0
            "scaler": self.scaler.state_dict(),
            "train_args": vars(self.args),
            "train_metrics": {**self.metrics, "fitness": self.fitness},
            "train_results": self.read_results_csv(),
            "date": datetime.now().astimezone().isoformat(),
            "version": __version__,
            "dydet": self._checkpoint_extras(),
            "license": "AGPL-3.0 (https://ultralytics.com/license)",
        }
        data = serialize_checkpoint(ckpt)
        atomic_write_bytes(self.last, data)
        if self.best_fitness == self.fitness:
            atomic_write_bytes(self.best, data)
        if (self.save_period > 0) and (self.epoch % self.save_period == 0):
            atomic_write_bytes(self.wdir / f"epoch{self.epoch}.pt", data)
        return True

    def final_eval(self) -> None:
        """Strip the optimizer from `last.pt` / `best.pt` (weights-only, atomically), then validate `best.pt`."""
        if RANK in {-1, 0}:
            results = strip_optimizer(self.last) if self.last.exists() else None
            if self.best.exists():
                strip_optimizer(self.best, train_results=results)
        if self.best.exists():
            LOGGER.info(f"\nValidating {self.best}...")
            self.validator.args.plots = self.args.plots
            self.validator.args.compile = False
            self.metrics = self.validator(model=self.final_eval_model())
            self.metrics.pop("fitness", None)
            self.epoch += 1  # log best metrics at step epochs+1, not overwriting last epoch
            self.run_callbacks("on_fit_epoch_end")
            self.epoch -= 1

    def final_eval_model(self) -> Any:
        """Return what `final_eval` validates: `best.pt`'s path (dydet's validator loads it weights-only)."""
        return self.best

    def get_dataloader(self, dataset_path, batch_size: int = 16, rank: int = 0, mode: str = "train"):
        """Build a loader as Ultralytics does; the training loader shuffles with a generator of its own.

        Ultralytics' shuffling shares its generator with the loader's per-iterator seed draw, so a resumed run (which
        starts a new iterator) would shuffle differently from the uninterrupted one; a sampler-only generator, saved
        in every checkpoint, makes the order of every epoch the same either way.
        """
        loader = super().get_dataloader(dataset_path, batch_size, rank, mode)
        sampler = getattr(loader, "sampler", None)
        if mode == "train" and isinstance(sampler, torch.utils.data.RandomSampler):
            sampler.generator = torch.Generator().manual_seed(int(self.args.seed) + max(RANK, 0))
        return loader

    # ------------------------------------------------------------------------------------------------------ loading
    def setup_model(self) -> dict[str, Any] | None:
        """Build the model from a YAML or a checkpoint, loaded by dydet's safe loader; return the resume checkpoint."""
        if isinstance(self.model, torch.nn.Module):
            return None
        cfg, weights, ckpt = self.model, None, None
        if str(self.model).lower().endswith(".pt"):
            ckpt = load_checkpoint_dict(self.model)
            weights = checkpoint_model(ckpt)
            cfg = weights.yaml
        if isinstance(self.args.pretrained, (str, Path)) and not self.resume:
            weights = self.pretrained_weights  # one model, or an (easy, hard) pair, when the front end read it
            if weights is None:
                weights = read_pretrained(self.args.pretrained)
        elif self.args.pretrained is False and not self.resume:
            weights = None
        self.model = self.get_model(cfg=cfg, weights=weights, verbose=RANK in {-1, 0})
        if self.resume and ckpt is not None and run_info(ckpt).get("train_state") is not None:
            self.model.load_state_dict(run_info(ckpt)["train_state"])
        return ckpt

    def check_resume(self, overrides: dict[str, Any]) -> None:
        """Take a resumed run's arguments from its checkpoint; never look for "the latest run" or default data."""
        from ultralytics.cfg import get_cfg

        resume = self.args.resume
        if resume:
            if not isinstance(resume, (str, Path)) or not Path(resume).is_file():
                raise MissingFileError(
                    f"resume={resume!r} needs the checkpoint of the interrupted run: "
                    "dydet train model=path/to/weights/last.pt resume=True"
                )
            ckpt = load_raw(resume)
            if not resumable(ckpt):
                raise CheckpointError(f"'{resume}' is a finished training checkpoint: there is nothing to resume")
            args = {k: v for k, v in (ckpt.get("train_args") or {}).items() if k in DEFAULT_CFG_KEYS or k == "save_dir"}
            self.args = get_cfg({**DEFAULT_CFG_DICT, **args})
            self.args.model = self.args.resume = str(resume)
            # beside the checkpoint (or where the user says), never where the file says: it may name another run
            run = resume_folder(resume, overrides.get("project"), overrides.get("name"))
            self.args.save_dir, self.args.project, self.args.name = str(run), str(run.parent), run.name
            if overrides.get("data"):  # e.g. the dataset moved; by default the run's own data
                self.args.data = overrides["data"]
            ignored = []
            for k, v in overrides.items():
                if k in RESUME_ALLOWED:
                    setattr(self.args, k, v)
                elif k not in RESUME_KEPT and v != getattr(self.args, k, None):
                    ignored.append(k)
            if ignored:
                LOGGER.warning(f"Resume ignores {ignored}, using checkpoint values. Start a new run to change them.")
            # Ultralytics overwrites workers on CPU after this; the run's own count keeps its augmentation stream
            self.run_workers = self.args.workers
            resume = True
        self.resume = resume

    def resume_training(self, ckpt: dict[str, Any] | None) -> None:
        """Resume as Ultralytics does, then restore what it does not: random states and the router loss' median."""
        super().resume_training(ckpt)
        if ckpt is None or not self.resume:
            return
        info = run_info(ckpt)
        if removed := remove_partial_writes(self.wdir):  # the interrupted process's half-written checkpoints
            LOGGER.info(f"Removed {len(removed)} partial checkpoint file(s) left in {self.wdir} by the interruption")
        self.plan = self.plan or info.get("plan")
        self._pending_rng = info.get("rng")
        if info.get("router_median") is not None:
            model = unwrap_model(self.model)
            model.criterion = model.init_criterion()
            median, saved = model.criterion.diffs, info["router_median"]
            median.buffer = saved["buffer"].to(self.device)
            median.count, median.pos = int(saved["count"]), int(saved["pos"])
        self.add_callback("on_train_epoch_start", _restore_rng_once)

    def _handle_nan_recovery(self, epoch: int) -> bool:
        """Ultralytics' NaN recovery from `last.pt`, reading it with dydet's loader."""
        loss_nan = self.loss is not None and not self.loss.isfinite()
        fitness_nan = self.fitness is not None and not torch.isfinite(torch.tensor(float(self.fitness)))
        if RANK != -1 or not (loss_nan or fitness_nan):
            return False if RANK == -1 else super()._handle_nan_recovery(epoch)
        reason = "Loss NaN/Inf" if loss_nan else "Fitness NaN/Inf"
        if epoch == self.start_epoch:
            LOGGER.warning(f"{reason} detected but can not recover from last.pt...")
            return False
        if not self.last.exists():
            raise RuntimeError(f"{reason} detected but no valid last.pt is available for recovery")
        self.nan_recovery_attempts += 1
        if self.nan_recovery_attempts > 3:
            raise RuntimeError(f"Training failed: NaN persisted for {self.nan_recovery_attempts} epochs")
        LOGGER.warning(f"{reason} detected (attempt {self.nan_recovery_attempts}/3), recovering from last.pt...")
        self._model_train()
        ckpt = load_checkpoint_dict(self.last)
        ema_state = ckpt["ema"].float().state_dict()
        if not all(torch.isfinite(v).all() for v in ema_state.values() if isinstance(v, torch.Tensor)):
            raise RuntimeError(f"Checkpoint {self.last} is corrupted with NaN/Inf weights")
        unwrap_model(self.model).load_state_dict(ema_state)
        self._load_checkpoint_state(ckpt)
        self.scheduler.last_epoch = epoch - 1
        return True


def _restore_rng_once(trainer: SafeCheckpoints) -> None:
    """`on_train_epoch_start` callback of a resumed run: put back the random states saved with its checkpoint."""
    state, trainer._pending_rng = trainer._pending_rng, None
    if state is None:
        return
    generator = _shuffle_generator(trainer.train_loader)
    set_rng_state(state, generator)
    sampler = getattr(trainer.train_loader, "sampler", None)
    close = trainer.args.close_mosaic
    reset_here = bool(close) and trainer.epoch == max(trainer.epochs - close, 0)  # the uninterrupted run's new loader
    if generator is not None and state.get("loader") is not None and not sampler.replacement and not reset_here:
        # torch's RandomSampler draws one more (tail) permutation when an epoch's indices run out, before the next
        # epoch's: the uninterrupted run's persistent iterator did so, this resumed run's new iterator will not
        torch.randperm(len(sampler.data_source), generator=generator)


def _shuffle_generator(loader: Any) -> torch.Generator | None:
    """Return the generator that shuffles a training loader (see `SafeCheckpoints.get_dataloader`), if any."""
    return getattr(getattr(loader, "sampler", None), "generator", None)


def strip_optimizer(path: Path, train_results: Any = None) -> Any:
    """Finalise a checkpoint as Ultralytics' `strip_optimizer` does (EMA as model, no optimizer), weights-only.

    Args:
        path (Path): `last.pt` or `best.pt`, rewritten atomically.
        train_results (Any): `train_results` to store (best.pt gets last.pt's full history).

    Returns:
        (Any): The checkpoint's `train_results`.
    """
    try:
        ckpt = load_raw(path)
    except (ValueError, FileNotFoundError) as e:
        LOGGER.warning(f"Skipping {path}: {e}")
        return None
    if ckpt.get("ema") is not None:
        ckpt["model"] = ckpt["ema"]
    if isinstance(ckpt.get("model"), dict):
        ckpt["model"]["state_dict"] = {
            k: v.half() if v.is_floating_point() else v for k, v in ckpt["model"]["state_dict"].items()
        }
    for k in ("optimizer", "best_fitness", "stopper", "ema", "updates", "scaler"):
        ckpt[k] = None
    ckpt["epoch"] = -1
    args = {**DEFAULT_CFG_DICT, **(ckpt.get("train_args") or {})}
    ckpt["train_args"] = {k: v for k, v in args.items() if k in DEFAULT_CFG_KEYS}
    if train_results is not None:
        ckpt["train_results"] = train_results
    info = run_info(ckpt)
    info.pop("rng", None)
    info.pop("train_state", None)
    info.pop("router_median", None)
    save_checkpoint(ckpt, path)
    return ckpt.get("train_results")
