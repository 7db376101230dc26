"""Data-parallel training: Ultralytics' spawn (`device=0,1`) and processes started by `torchrun`, CPU included.

Two ways start the processes, and dydet's trainers serve both:

- **Ultralytics' spawn** (`dydet train ... device=0,1`): the launching process runs dydet's stage plan; for each stage
  its trainer writes Ultralytics' DDP file (trainer class, args, model, callbacks) and `torch.distributed.run` starts
  one worker per GPU, which re-creates the trainer from that file and trains the stage. The plan is not an Ultralytics
  argument (it would fail `check_dict_alignment`), so it travels in the callbacks under `PLAN_EVENT`, an event no
  one fires, and the worker's trainer takes it from there (its checkpoints then carry it, so resume finishes the plan).
- **torchrun** (`torchrun --nproc_per_node N -m dydet train ...`): every process runs the whole CLI, hence the same
  stage plan; `join_process_group` joins the process group torchrun describes in the environment (gloo on the CPU,
  nccl on GPUs) before the first stage, rank 0 claims the run folders and the others take its choice, and the
  trainers train in that group. Ultralytics trains in a process group only on GPUs (`world_size = 0` for the CPU,
  `DistributedDataParallel(device_ids=[None])` fails there): `DataParallel` trains on the CPU too.

In both, `batch=` is the total over all processes (each takes `batch // N`), and each process validates the whole
validation set with a dynamic model (see `dydet.engine.validator.RoutedValidator.gather_stats`).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from ultralytics.utils import LOCAL_RANK, LOGGER, RANK
from ultralytics.utils.torch_utils import torch_distributed_zero_first

from dydet.utils.distributed import from_rank0, world_size

PLAN_EVENT = "dydet_plan"  # callbacks key that carries the stage plan into Ultralytics' DDP workers
TIMEOUT = timedelta(hours=3)  # as Ultralytics' own DDP workers: rank 0 may validate or calibrate for a long time


def launched_by_torchrun() -> bool:
    """Return whether this process is one of several started by `torchrun` (or `torch.distributed.run`)."""
    return LOCAL_RANK != -1 and int(os.environ.get("WORLD_SIZE", "1")) > 1


def on_cpu(device: Any) -> bool:
    """Return whether a `device=` value selects the CPU (or nothing, on a machine without a GPU)."""
    text = str(device if device is not None else "").strip().lower()
    return text == "cpu" or (text in {"", "none"} and not torch.cuda.is_available())


def join_process_group(device: Any) -> int:
    """Join the process group `torchrun` described in the environment, once; return the number of processes.

    Gloo on the CPU, nccl on GPUs (each process on the GPU its local rank picks). A single process (no `torchrun`, or
    Ultralytics' spawn, whose workers join their group in the trainer) gets 1 and joins nothing.

    Args:
        device (Any): The run's `device=`.

    Returns:
        (int): The number of processes training together.
    """
    if not launched_by_torchrun():
        return 1
    if not dist.is_initialized():
        backend = "gloo" if on_cpu(device) else "nccl"
        if backend == "nccl":
            torch.cuda.set_device(gpu_index(device))
        dist.init_process_group(backend, timeout=TIMEOUT)
        if RANK == 0:
            LOGGER.info(
                f"dydet: data-parallel training in {dist.get_world_size()} processes ({backend}, rank 0 writes the "
                "files); batch= is the total over all processes"
            )
    return dist.get_world_size()


def gpu_index(device: Any) -> int:
    """Return the GPU this process trains on: its local rank's entry of `device=0,1,...`, else the local rank."""
    devices = [d for d in str(device or "").replace("cuda:", "").split(",") if d.strip().isdigit()]
    return int(devices[LOCAL_RANK]) if LOCAL_RANK < len(devices) else max(LOCAL_RANK, 0)


def claim_run_dir(claimed: str | None) -> str | None:
    """Return rank 0's run folder in every process (rank 0 claims it; the others must not claim one of their own)."""
    return from_rank0(claimed)


class DataParallel:
    """Mixin for dydet's trainers (before Ultralytics' trainer in the bases): train in a process group, CPU included.

    - In a worker of Ultralytics' spawn it takes the stage plan from the callbacks (`PLAN_EVENT`); in the launching
      process it puts the plan there before the spawn.
    - In a `torchrun` process group it trains with the group's size (Ultralytics counts `device=` entries, 0 on the
      CPU) and joins no second group; on the CPU it wraps the model in `DistributedDataParallel` itself, after
      Ultralytics' set-up (which would pass `device_ids=[None]`), with rank 0's AMP decision as Ultralytics shares it.
    """

    _group_size: int | None = None  # the group's size while `_setup_train` hides it from Ultralytics (CPU)
    whole_val_split = False  # whether each process validates the whole split (its validator gathers nothing)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Initialise the Ultralytics trainer, then take the group's size and the plan a spawn handed over."""
        super().__init__(*args, **kwargs)
        carried = self.callbacks.pop(PLAN_EVENT, None)
        if carried:
            self.plan = carried[0].plan
        if dist.is_available() and dist.is_initialized():  # torchrun: the group exists before the trainer
            self.world_size = dist.get_world_size()
            self.ddp = False
        elif launched_by_torchrun() and self.device.type == "cpu":  # a CPU worker of Ultralytics' spawn (tests)
            self.world_size = int(os.environ["WORLD_SIZE"])

    def train(self) -> None:
        """Train, handing the stage plan to Ultralytics' DDP workers when this process spawns them."""
        if self.ddp and self.plan is not None:
            self.callbacks[PLAN_EVENT] = [PlanCarrier(self.plan)]
        try:
            super().train()
        finally:
            self.callbacks.pop(PLAN_EVENT, None)

    def _setup_ddp(self) -> None:
        """Join Ultralytics' spawned group (gloo on the CPU), or, in a torchrun group, pick this process's device."""
        if not dist.is_initialized():
            if self.device.type != "cpu":
                return super()._setup_ddp()
            return dist.init_process_group("gloo", timeout=TIMEOUT)  # Ultralytics would pick a GPU and nccl
        if self.device.type != "cpu":
            self.device = torch.device("cuda", gpu_index(self.args.device))
            torch.cuda.set_device(self.device)

    def _setup_train(self) -> None:
        """Set up as Ultralytics does; on the CPU in a process group, wrap the model for data parallelism here."""
        n = self.world_size
        if n > 1 and RANK == 0:
            LOGGER.info(f"dydet: training in {n} processes, {self.batch_size // n} images per process per step")
        if not (n > 1 and self.device.type == "cpu"):
            return super()._setup_train()
        self.world_size = 1  # Ultralytics' set-up would wrap with device_ids=[None]; the pipeline below still splits
        try:
            self._group_size = n
            super()._setup_train()
        finally:
            self.world_size, self._group_size = n, None
        self.amp = bool(from_rank0(self.amp))  # Ultralytics broadcasts rank 0's AMP check only in a group
        self.model = nn.parallel.DistributedDataParallel(
            self.model, find_unused_parameters=not bool(self.args.compile), broadcast_buffers=False
        )

    def _build_train_pipeline(self) -> None:
        """Build the loaders with the group's size: each process takes `batch // N` images of its share."""
        n = getattr(self, "_group_size", None)
        if not n:
            return super()._build_train_pipeline()
        self.world_size = n
        try:
            super()._build_train_pipeline()
        finally:
            self.world_size = 1

    def final_eval(self) -> None:
        """Validate the final checkpoint in every process (as Ultralytics), plotting in rank 0 only; then wait."""
        if world_size() == 1:
            return super().final_eval()
        if RANK > 0:  # Ultralytics' validation waits on rank 0 at points of its own: the others run it too
            self.args.plots = False
        super().final_eval()
        dist.barrier()  # every process then reads rank 0's finished checkpoint

    def get_dataloader(self, dataset_path: str, batch_size: int = 16, rank: int = 0, mode: str = "train"):
        """Return Ultralytics' loader; with `whole_val_split`, the validation loader reads the whole split."""
        if mode != "val" or world_size() == 1 or not self.whole_val_split:
            return super().get_dataloader(dataset_path, batch_size, rank, mode)
        with torch_distributed_zero_first(rank):  # rank 0 writes the labels cache first
            return super().get_dataloader(dataset_path, batch_size, -1, mode)


@contextmanager
def validating_alone(device: Any):
    """Let a process of a group validate by itself on the CPU, where Ultralytics' validator asks CUDA for its device.

    Outside training, Ultralytics' `BaseValidator` places the model on `cuda:<current device>` in any process with a
    rank (it expects a GPU worker of its own spawn); on the CPU that fails. For the duration of the validation its
    module reads the rank as -1 (a single process), which is what rank 0 validating alone (final checkpoint,
    calibration) is; nothing else changes.
    """
    if RANK == -1 or not on_cpu(device):
        yield
        return
    from ultralytics.engine import validator

    validator.RANK = -1
    try:
        yield
    finally:
        validator.RANK = RANK


class PlanCarrier:
    """The stage plan, as a picklable callback that does nothing (pickled by import path into the DDP file)."""

    def __init__(self, plan: dict[str, Any]) -> None:
        """Hold the plan."""
        self.plan = plan

    def __call__(self, trainer: Any) -> None:
        """Do nothing: the event is never fired."""
