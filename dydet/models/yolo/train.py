"""Stage-1 training: both routes on every image, loss = easy-route loss + hard-route loss.

The method: docs/METHOD.md, "Training, stage 1: the cascade".
"""

from __future__ import annotations

from ultralytics.utils import RANK
from ultralytics.utils.torch_utils import unwrap_model

from dydet.engine.trainer import RoutedTrainer
from dydet.models.yolo.val import DynamicValidator
from dydet.nn.tasks import DynamicDetectionModel


class DynamicTrainer(RoutedTrainer):
    """Stage-1 trainer for a `DynamicDetectionModel`: B1, B2, H1 and H2 jointly, equal-weight sum of both losses.

    Losses are logged per route (`e_box_loss e_cls_loss e_dfl_loss h_box_loss h_cls_loss h_dfl_loss`), validation
    reports the routed model `(B)` and each route's precision, recall, mAP50 and mAP50-95 (`(E)`, `(H)`), and the
    best checkpoint maximises the mean of both routes' fitness. A single-model
    Ultralytics checkpoint passed as `pretrained=` initialises both routes (see `DynamicDetectionModel.load_single`).
    CPU threads / workers and weights-only atomic checkpoints: `DydetTrainer`.
    """

    validator_class = DynamicValidator

    def get_model(self, cfg=None, weights=None, verbose: bool = True) -> DynamicDetectionModel:
        """Build the dynamic model for this dataset and load `weights` (dydet or single-model) into it.

        `verbose` prints the model's summary; the layer table too with the `verbose` argument (`verbose=True`).
        """
        summary = verbose and RANK == -1
        model = DynamicDetectionModel(
            cfg or self.args.model, nc=self.data["nc"], ch=self.data["channels"], verbose=summary and self.args.verbose
        )
        if summary and not self.args.verbose:
            model.info()
        model = self.set_model_names_for_load(model)
        if weights:
            model.load(weights, verbose=verbose)
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
