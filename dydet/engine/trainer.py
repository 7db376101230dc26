"""The family-neutral trainers every dydet model family builds on.

- `DydetTrainer`: Ultralytics' detection trainer with dydet's weights-only atomic checkpoints and CPU thread / worker
  defaults; the common parent of the static (`StaticTrainer`) and the dynamic trainers.
- `RoutedTrainer`: stage 1 of a dynamic model (both routes on every image), validated per route by the family's
  validator (`validator_class`) and plotted per route; `best.pt` is chosen by `checkpoint_fitness`, not by the
  routed model's `metrics.fitness`.
- `RouterStageTrainer`: stage 2 (the router alone), mixed in before a family's stage-1 trainer: it loads the stage-1
  model, marks it stage 2 and lets the family freeze everything but the router (`freeze_detector`).
"""

from __future__ import annotations

import logging
from copy import copy

import numpy as np
from torch import distributed as dist
from torch import nn
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils import DEFAULT_CFG, LOGGER, RANK, colorstr
from ultralytics.utils.torch_utils import unwrap_model

from dydet.engine.checkpointing import SafeCheckpoints
from dydet.engine.distributed import DataParallel
from dydet.engine.validator import DATA_ACCESS, RoutedValidator
from dydet.routing import ROUTES
from dydet.utils.errors import CheckpointError
from dydet.utils.logs import BANNER, dropping
from dydet.utils.metrics import DynamicDetMetrics
from dydet.utils.plotting import plot_route_results
from dydet.utils.torch_utils import default_cpu_workers, set_cpu_threads


class DydetTrainer(DataParallel, SafeCheckpoints, DetectionTrainer):
    """Ultralytics' detection trainer with weights-only atomic checkpoints and dydet's CPU thread / worker defaults.

    On CPU it trains with `threads` torch threads and `workers` dataloader workers (default: all cores as threads on an
    idle machine; one worker and the rest of the cores as threads on a busy one, see
    `dydet.utils.torch_utils.default_cpu_workers`; Ultralytics alone uses `cores - 1` threads and no workers).
    `threads` is dydet's argument, taken out of `overrides` before Ultralytics sees it. Trains data-parallel in a
    process group, on the CPU too (`dydet.engine.distributed.DataParallel`).
    """

    def __init__(self, cfg=DEFAULT_CFG, overrides: dict | None = None, _callbacks: dict | None = None) -> None:
        """Initialise the Ultralytics trainer, then set dydet's CPU threads and workers over what Ultralytics chose."""
        overrides = dict(overrides or {})
        threads = overrides.pop("threads", None)
        super().__init__(cfg, overrides, _callbacks)
        self.cpu_threads = None  # torch threads chosen for CPU training (stage 2 of the same run keeps them)
        if self.device.type == "cpu":  # Ultralytics forced workers=0 here; keep the run's own value, else dydet's
            workers = overrides.get("workers", self.run_workers)
            self.args.workers = default_cpu_workers() if workers is None else workers
            n = self.cpu_threads = set_cpu_threads(self.device, threads, self.args.workers)
            if RANK in {-1, 0}:
                LOGGER.info(
                    f"dydet: CPU training with {n} torch threads and {self.args.workers} dataloader workers "
                    "(threads=, workers= to change)"
                )


# what stage 2 of a run would print again (same machine, data and labels): left out unless `verbose`
STAGE1_REPEATS = (
    BANNER,
    r"engine/trainer: ",
    r"dydet: CPU training with ",
    DATA_ACCESS,
    r"Plotting labels to ",
    r"Using \d+ train, \d+ val images",  # with where results go and the epochs: stage 2's `Froze` line says them
)
EPOCH_HEADER = r"\s+Epoch\s+GPU_mem "


def checkpoint_fitness(metrics: DynamicDetMetrics) -> float:
    """Return the fitness a dynamic trainer keeps `best.pt` (and early stopping) by.

    Stage 1: the mean of both routes' fitness (the best checkpoint has both routes good); stage 2: the fitness of the
    router's rank split `(R)`, half of the images (lowest scores) hard (the best checkpoint ranks images best). The
    routed model's `metrics.fitness` (`(B)`, at the model's threshold) is not used: before calibration its threshold
    is a placeholder.

    Args:
        metrics (DynamicDetMetrics): The processed metrics of a validation.

    Returns:
        (float): The criterion, higher is better.
    """
    if metrics.stage >= 2:
        return float(metrics.split.fitness)
    return float(np.mean([metrics.routes[r].fitness for r in ROUTES]))


class RoutedTrainer(DydetTrainer):
    """Stage-1 trainer of a dynamic model: both routes on every image, validated and plotted per route.

    Attributes:
        validator_class (type): The family's per-route validator.
    """

    validator_class: type[RoutedValidator] = RoutedValidator
    whole_val_split = True  # the validator keeps per-route, per-image records that Ultralytics' gather drops

    def get_validator(self) -> RoutedValidator:
        """Return the family's per-route validator (per-class tables in the final validation only with `verbose`)."""
        return self.validator_class(
            self.test_loader, save_dir=self.save_dir, args=copy(self.args), _callbacks=self.callbacks
        )

    def validate(self) -> tuple[dict | None, float | None]:
        """Validate as Ultralytics does, with `checkpoint_fitness` as the fitness that picks `best.pt`."""
        if self.ema and self.world_size > 1:  # as the stock trainer: every rank validates rank 0's EMA
            for buffer in self.ema.ema.buffers():
                dist.broadcast(buffer, src=0)
        metrics = self.validator(self)
        if metrics is None:
            return None, None
        metrics.pop("fitness", None)  # the routed model's; results.csv leaves fitness out, as Ultralytics does
        fitness = checkpoint_fitness(self.validator.metrics)
        if self.best_fitness is None or self.best_fitness < fitness:
            self.best_fitness = fitness
        return metrics, fitness

    def plot_metrics(self) -> None:
        """Plot both routes' losses and metrics per epoch into `results.png`."""
        plot_route_results(self.csv, on_plot=self.on_plot)


class RouterStageTrainer(RoutedTrainer):
    """Stage-2 trainer: only the router learns; put it before the family's stage-1 trainer in the bases.

    The family's stage-1 `get_model` builds the model and loads the stage-1 weights; this marks it stage 2, keeps the
    stage-1 threshold, drops any calibration (the router changes) and calls `freeze_detector`. Without `verbose` it
    leaves out the lines stage 1 of the run printed already (`STAGE1_REPEATS`) and prints the epoch header once.
    """

    def __init__(self, cfg=DEFAULT_CFG, overrides: dict | None = None, _callbacks: dict | None = None) -> None:
        """Initialise the trainer, without repeating stage 1's banner, arguments and CPU set-up unless `verbose`."""
        verbose = (overrides or {}).get("verbose", getattr(cfg, "verbose", True))
        with dropping(STAGE1_REPEATS, active=not verbose):
            super().__init__(cfg, overrides, _callbacks)

    def train(self) -> None:
        """Train as the stock trainer does; without `verbose`, no repeats of stage 1's lines nor of the epoch header."""
        with dropping(STAGE1_REPEATS, repeats=(EPOCH_HEADER,), active=not self.args.verbose):
            super().train()

    def get_validator(self) -> RoutedValidator:
        """Return the per-route validator; without `verbose`, no final results table when a calibration follows.

        The calibration right after this stage reports the trained router at every hard ratio; the final table would
        show it at the stage-1 placeholder threshold.
        """
        validator = super().get_validator()
        validator.print_table = self.args.verbose or not (self.plan or {}).get("calibrate")
        return validator

    def get_model(self, cfg=None, weights=None, verbose: bool = True) -> nn.Module:
        """Load the stage-1 model, mark it as in stage 2 and freeze every part but the router."""
        source = weights if weights is not None else cfg
        if weights is None or getattr(weights, "stage", 0) < 1:
            raise CheckpointError(
                f"stage 2 needs a stage-1 dydet checkpoint (model=.../weights/best.pt from 'dydet train stage=1'), "
                f"got {getattr(source, 'yaml', {}).get('yaml_file', source) if source is not None else 'none'}"
            )
        model = super().get_model(cfg=cfg, weights=weights, verbose=False)
        model.stage = 2
        model.threshold, model.calibration = weights.threshold, None
        self.freeze_detector(model)
        return model

    def freeze_detector(self, model: nn.Module) -> None:
        """Arrange for every parameter but the router's to stay frozen (the family's way)."""
        raise NotImplementedError(f"{type(self).__name__} does not say how to freeze its detector")

    def _setup_train(self):
        """Set up as the stock trainer does, with one summary line instead of a `Freezing layer` line per tensor."""
        quiet = FreezeLogSummary()
        LOGGER.addFilter(quiet)
        try:
            super()._setup_train()
        finally:
            LOGGER.removeFilter(quiet)
        if RANK in {-1, 0}:
            n = sum(p.numel() for p in unwrap_model(self.model).router.parameters())
            LOGGER.info(
                f"Froze {quiet.count} detector parameter tensors (BatchNorm in eval): training the router's {n:,} "
                f"parameters for {self.epochs} epochs, results to {colorstr('bold', self.save_dir)}"
            )
        unwrap_model(self.model).criterion = None  # built lazily from the model's stage: RouterLoss


class FreezeLogSummary(logging.Filter):
    """Logging filter that drops the stock trainer's per-tensor `Freezing layer '...'` lines and counts them."""

    def __init__(self) -> None:
        """Start counting at zero."""
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """Return False (drop) for a `Freezing layer` line, True for anything else."""
        if str(record.msg).startswith("Freezing layer '"):
            self.count += 1
            return False
        return True
