"""dydet checkpoints: saved in a weights-only form, loaded without running code, written atomically.

A dydet checkpoint is the dict Ultralytics' trainer writes (`epoch`, `optimizer`, `train_args`, ...) except that its
`model` / `ema` entries are not pickled modules but *model records*, plain containers and tensors:

    {"format": "dydet.model/1", "class": "DynamicDetectionModel" | "StaticDetectionModel", "yaml": the model YAML,
     "state_dict": {name: tensor}, "names", "stride", "threshold", "calibration", "stage", "args", "task"}

so the whole file loads with `torch.load(weights_only=True)` and the model is rebuilt from its YAML (with Ultralytics'
restricted model construction: no `eval`, only known layers) before the state dict is loaded into it.

Loading order (`load_checkpoint_dict`):

1. `torch.load(weights_only=True)`: dydet checkpoints, and anything else made of plain containers and tensors;
2. Ultralytics' own safe loader (`torch_safe_load(safe_only=True)`, its allow-list of Ultralytics/torch classes,
   plus dydet's own layer classes, `allow_dydet_layers`): official Ultralytics detection checkpoints
   (`pretrained=yolo11n.pt`) and pickled static YOLOv7-family models (`StaticDetectionModel`);
3. anything else (an old-format dydet checkpoint, a third-party file, a crafted pickle) is refused with a one-line
   error, unless the user opts in with `trust_checkpoint=True` (unsafe: a pickle can run any code).
"""

from dydet.utils.checkpoint.read import DYDET_CLASS_MODULES, allow_dydet_layers, load_raw
from dydet.utils.checkpoint.rng import rng_state, set_rng_state
from dydet.utils.checkpoint.save import (
    WRITE_ERRNOS,
    as_write_error,
    atomic_write_bytes,
    fsync_dir,
    remove_abandoned_writes,
    remove_partial_writes,
    write_error,
)
from dydet.utils.checkpoint.trust import MODEL_FORMAT, MODEL_KEYS, TRUST_ARG, is_model_record, to_plain, trusting

__all__ = [
    "DYDET_CLASS_MODULES",
    "MODEL_FORMAT",
    "MODEL_KEYS",
    "TRUST_ARG",
    "WRITE_ERRNOS",
    "allow_dydet_layers",
    "as_write_error",
    "atomic_write_bytes",
    "fsync_dir",
    "is_model_record",
    "load_raw",
    "remove_abandoned_writes",
    "remove_partial_writes",
    "rng_state",
    "set_rng_state",
    "to_plain",
    "trusting",
    "write_error",
]
