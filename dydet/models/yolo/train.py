"""Stage-1 training: both routes on every image, loss = easy-route loss + hard-route loss.

The method: docs/METHOD.md, "Training, stage 1: the cascade".
"""

from __future__ import annotations

from copy import copy

from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils import DEFAULT_CFG, LOGGER, RANK
from ultralytics.utils.torch_utils import unwrap_model

from dydet.engine.checkpointing import SafeCheckpoints
from dydet.models.yolo.val import DynamicValidator
from dydet.nn.tasks import DynamicDetectionModel
from dydet.utils.torch_utils import default_cpu_workers, set_cpu_threads


class DynamicTrainer(SafeCheckpoints, DetectionTrainer):
    """Stage-1 trainer for a `DynamicDetectionModel`: B1, B2, H1 and H2 jointly, equal-weight sum of both losses.

    Losses are logged per route (`e_box_loss e_cls_loss e_dfl_loss h_box_loss h_cls_loss h_dfl_loss`), validation
    reports the routed model `(B)` and each route's precision, recall, mAP50 and mAP50-95 (`(E)`, `(H)`), and the
    best checkpoint maximises the mean of both routes' fitness. A single-model
    Ultralytics checkpoint passed as `pretrained=` initialises both routes (see `DynamicDetectionModel.load_single`).
    On CPU it trains with `threads` torch threads and `workers` dataloader workers (default: all cores as threads on an
    idle machine; one worker and the rest of the cores as threads on a busy one, see
    `dydet.utils.torch_utils.default_cpu_workers`; Ultralytics alone uses `cores - 1` threads and no workers).
    `threads` is dydet's argument, taken out of `overrides` before Ultralytics sees it.
    Checkpoints are weights-only and written atomically (`SafeCheckpoints`).
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

    def get_model(self, cfg=None, weights=None, verbose: bool = True) -> DynamicDetectionModel:
        """Build the dynamic model for this dataset and load `weights` (dydet or single-model) into it."""
        model = DynamicDetectionModel(
            cfg or self.args.model, nc=self.data["nc"], ch=self.data["channels"], verbose=verbose and RANK == -1
        )
        model = self.set_model_names_for_load(model)
        if weights:
            model.load(weights)
        model.stage = 1  # any change to the detectors invalidates a trained router
        return model

    def build_optimizer(self, model, name="auto", lr=0.001, momentum=0.9, decay=1e-5, iterations=1e5):
        """Build Ultralytics' optimizer (its `auto` choice: AdamW, or MuSGD for long runs) for both heads.

        With MuSGD, Ultralytics trains the class branches of `model[-1]` (the hard head) at 3x the learning rate; the
        easy head gets the same (`boost_every_head`).
        """
        optimizer = super().build_optimizer(model, name, lr, momentum, decay, iterations)
        boost_every_head(optimizer, unwrap_model(model))
        return optimizer

    def get_validator(self) -> DynamicValidator:
        """Return the per-route validator."""
        return DynamicValidator(
            self.test_loader, save_dir=self.save_dir, args=copy(self.args), _callbacks=self.callbacks
        )

    def plot_metrics(self) -> None:
        """Plot both routes' losses and metrics per epoch into `results.png`."""
        from dydet.utils.plotting import plot_route_results

        plot_route_results(self.csv, on_plot=self.on_plot)


def boost_every_head(optimizer, model) -> int:
    """Give every head's class branches the boosted MuSGD learning rate Ultralytics gives only `model[-1]`'s.

    Ultralytics' MuSGD parameter groups come in pairs, (boosted at 3x lr, plain), one pair per kind of parameter; the
    class branches (`cv3`, `one2one_cv3`) of the other heads move from each plain group to its boosted partner.

    Args:
        optimizer (torch.optim.Optimizer): The optimizer `BaseTrainer.build_optimizer` returned.
        model (torch.nn.Module): The model it optimises (a dydet model has `heads`).

    Returns:
        (int): Number of parameter tensors moved (0 for any optimizer but MuSGD).
    """
    heads = getattr(model, "heads", ())
    if type(optimizer).__name__ != "MuSGD" or not isinstance(heads, (tuple, list)):  # e.g. SGD, or an R-CNN model
        return 0
    heads = tuple(heads)[:-1]  # the last head is `model[-1]`, boosted by Ultralytics already
    branches = [getattr(h, name, None) for h in heads for name in ("cv3", "one2one_cv3")]
    extra = {id(p) for m in branches if m is not None for p in m.parameters()}
    groups = optimizer.param_groups
    if not extra:
        return 0
    moved = 0
    for boosted, plain in zip(groups[0::2], groups[1::2]):
        if abs(boosted["lr"] - 3 * plain["lr"]) > 1e-12 * max(plain["lr"], 1.0):
            raise RuntimeError("unexpected MuSGD parameter groups: cannot boost the easy head's class branches")
        move = [p for p in plain["params"] if id(p) in extra]
        plain["params"] = [p for p in plain["params"] if id(p) not in extra]
        boosted["params"].extend(move)
        moved += len(move)
    return moved
