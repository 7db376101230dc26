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

from __future__ import annotations

import ast
import contextlib
import io
import os
import pickle
import random
import re
import tempfile
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dydet.utils.errors import CheckpointError, MissingFileError

MODEL_FORMAT = "dydet.model/1"
MODEL_KEYS = ("model", "ema")
TRUST_ARG = "trust_checkpoint"
_TRUST: ContextVar[bool] = ContextVar("dydet_trust_checkpoint", default=False)


# ------------------------------------------------------------------------------------------------------------- trust
@contextlib.contextmanager
def trusting(trust: bool | None) -> Iterator[None]:
    """Within this block, checkpoints that need arbitrary unpickling load when `trust` is True (unsafe).

    Args:
        trust (bool | None): The user's `trust_checkpoint=` value; None keeps the current setting.
    """
    if trust is None:
        yield
        return
    if not isinstance(trust, bool):
        raise CheckpointError(f"{TRUST_ARG}={trust!r} is invalid: use True or False")
    token = _TRUST.set(trust)
    try:
        yield
    finally:
        _TRUST.reset(token)


def _refusal(path: Path, why: str) -> CheckpointError:
    return CheckpointError(
        f"checkpoint '{path}' is not in a safe format ({why}): dydet loads checkpoints without running code and "
        f"refused it. Only if you trust who made the file, pass {TRUST_ARG}=True (unsafe: loading it can run any code)"
    )


# ------------------------------------------------------------------------------------------------------ plain values
def to_plain(obj: Any) -> Any:
    """Return `obj` made of what `torch.load(weights_only=True)` accepts: dicts, lists, tuples, str, numbers, tensors.

    numpy scalars/arrays become Python numbers / tensors, paths and other objects their string.
    """
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, dict):
        return {to_plain(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_plain(v) for v in obj) if type(obj) in (list, tuple) else [to_plain(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return [to_plain(v) for v in sorted(obj, key=str)]
    if hasattr(obj, "__dict__") and type(obj).__name__ == "IterableSimpleNamespace":
        return to_plain(vars(obj))
    return str(obj)


# ----------------------------------------------------------------------------------------------------- model records
def model_classes() -> dict[str, type[torch.nn.Module]]:
    """Return the allow-list of model classes a dydet model record can hold, by the name in its `class` entry."""
    from dydet.nn.rcnn import DynamicRCNN
    from dydet.nn.tasks import DynamicDetectionModel, StaticDetectionModel

    return {
        "DynamicDetectionModel": DynamicDetectionModel,
        "StaticDetectionModel": StaticDetectionModel,
        "DynamicRCNN": DynamicRCNN,
    }


def model_record(model: torch.nn.Module) -> dict[str, Any]:
    """Return the weights-only record of a dydet model (see the module docstring).

    Args:
        model (torch.nn.Module): A `DynamicDetectionModel`, or a `StaticDetectionModel` (the static YOLOv7-family
            models only dydet builds), in any dtype; tensors are stored as they are.

    Returns:
        (dict): The record.
    """
    classes = model_classes()
    if type(model) not in classes.values():
        raise TypeError(f"dydet saves {' and '.join(classes)} checkpoints only, got a {type(model).__name__}")
    if model.is_fused():
        raise CheckpointError("cannot save a fused model (Conv+BN folded): save the model before calling fuse()")
    args = getattr(model, "args", None)
    return {
        "format": MODEL_FORMAT,
        "class": type(model).__name__,
        "yaml": to_plain(model.yaml),
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "names": to_plain(dict(model.names)),
        "stride": model.stride.detach().clone() if isinstance(model.stride, torch.Tensor) else to_plain(model.stride),
        "threshold": float(getattr(model, "threshold", 0.5)),  # routing state: defaults on a static model
        "calibration": to_plain(getattr(model, "calibration", None)),
        "stage": int(getattr(model, "stage", 0)),
        "args": to_plain(dict(vars(args)) if hasattr(args, "__dict__") else dict(args or {})),
        "task": "detect",
    }


def is_model_record(obj: Any) -> bool:
    """Return whether `obj` is a dydet model record."""
    return isinstance(obj, dict) and obj.get("format") == MODEL_FORMAT


_ACTIVATION = re.compile(r"(torch\.)?nn\.[A-Za-z_]\w*\(.*\)", re.DOTALL)


def _check_model_yaml(cfg: dict[str, Any], source: Path) -> None:
    """Refuse a checkpoint's model YAML that would make the model builder call anything but known layers.

    Ultralytics' `parse_model` looks layer names up in its module namespace and `eval`s the activation; a checkpoint
    is untrusted input, so every name must resolve to an `nn.Module` class and the activation must be a literal
    `nn.<Class>(literals)` call (the model is also built under Ultralytics' restricted mode, which does the same).
    """
    import ultralytics.nn.tasks as tasks

    from dydet.nn.parse import DYDET_LAYERS

    act = cfg.get("activation")
    if act is not None:
        ok = isinstance(act, str) and _ACTIVATION.fullmatch(act.strip()) is not None
        if ok:
            call = ast.parse(act.strip(), mode="eval").body
            ok = isinstance(call, ast.Call) and all(
                isinstance(a, ast.Constant) for a in [*call.args, *(k.value for k in call.keywords)]
            )
            cls = getattr(torch.nn, act.strip().split("(")[0].rsplit(".", 1)[-1], None)
            ok = ok and isinstance(cls, type) and issubclass(cls, torch.nn.Module)
        if not ok:
            raise _refusal(source, f"its model YAML has an unsupported activation {act!r}")
    for section in ("backbone", "head"):
        layers = cfg.get(section)
        if not isinstance(layers, list):
            raise CheckpointError(f"checkpoint '{source}' is damaged: its model YAML has no '{section}' list")
        for layer in layers:
            name = layer[2] if isinstance(layer, (list, tuple)) and len(layer) == 4 else None
            if not isinstance(name, str):
                raise CheckpointError(f"checkpoint '{source}' is damaged: bad layer {layer!r} in its model YAML")
            if name.startswith("nn."):
                m = getattr(torch.nn, name[3:], None)
            elif name.startswith("torchvision.ops."):
                import torchvision

                m = getattr(torchvision.ops, name[16:], None)
            else:
                m = vars(tasks).get(name) or DYDET_LAYERS.get(name)  # Ultralytics' layers, then dydet's (SPPCSPC, ..)
            if not (isinstance(m, type) and issubclass(m, torch.nn.Module)):
                raise _refusal(source, f"its model YAML names {name!r}, which is not a model layer")


@contextlib.contextmanager
def _restricted_build() -> Iterator[None]:
    """Build models with Ultralytics' restricted `parse_model` (no `eval`, only known layers), where available."""
    from ultralytics.nn import tasks

    safe = getattr(tasks, "_SafeLoad", None)
    local = getattr(safe, "_local", None)
    if local is None:
        yield
        return
    before = getattr(local, "active", False)
    local.active = True
    try:
        yield
    finally:
        local.active = before


def build_model(record: dict[str, Any], source: str | Path = "checkpoint") -> torch.nn.Module:
    """Rebuild a dydet model from its record: model from the YAML, then the state dict (float32).

    Args:
        record (dict): A model record (`model_record`).
        source (str | Path): The file it came from, for messages.

    Returns:
        (DynamicDetectionModel | StaticDetectionModel): The model (the record's `class`), in float32.
    """
    source = Path(source)
    cfg = record.get("yaml")
    if not isinstance(cfg, dict) or not isinstance(record.get("state_dict"), dict):
        raise CheckpointError(f"checkpoint '{source}' is damaged: its model record has no YAML or no weights")
    from dydet.nn.family import DetectorFamily

    model_class = model_classes().get(record.get("class", "DynamicDetectionModel"))
    if model_class is None:
        raise _refusal(source, f"its model record names the class {record.get('class')!r}, which dydet does not build")
    if model_class.__name__ in {"DynamicDetectionModel", "StaticDetectionModel"}:
        _check_model_yaml(cfg, source)  # the R-CNN builder reads only numbers from its YAML (a ResNet depth, ...)
    try:
        with _restricted_build():
            model = model_class(cfg, ch=int(cfg.get("channels", 3)), nc=cfg.get("nc"), verbose=False)
    except (TypeError, KeyError, IndexError, ValueError) as e:
        raise CheckpointError(f"checkpoint '{source}' is damaged: its model YAML does not build ({e})") from e
    state = {k: v.float() if v.is_floating_point() else v for k, v in record["state_dict"].items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise CheckpointError(
            f"checkpoint '{source}' is damaged: its weights do not fit its model YAML ({first})"
        ) from e
    model.names = dict(record.get("names") or model.names)
    if isinstance(record.get("stride"), torch.Tensor):
        model.stride = record["stride"].float()
    if isinstance(model, DetectorFamily):  # routing state; a static model has none
        model.threshold = float(record.get("threshold", model.threshold))
        model.calibration = record.get("calibration")
        model.stage = int(record.get("stage", 0))
    model.args = dict(record.get("args") or {})
    model.task = "detect"
    return model


# ---------------------------------------------------------------------------------------------------------- loading
def _torch_load_weights_only(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)


def _unreadable(path: Path, e: BaseException) -> CheckpointError:
    why = " ".join(f"{type(e).__name__}: {e}".split())[:200]
    return CheckpointError(
        f"checkpoint '{path}' is not a readable PyTorch checkpoint (empty, truncated or another kind of file: {why}); "
        "use the original file or train again"
    )


def _needs_globals(path: Path) -> bool:
    """Return whether a `torch.save` archive references Python globals beyond what weights-only loading allows."""
    try:
        return bool(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # not a zip archive (garbage, or torch's legacy format): unreadable either way
        return False


def _load_ultralytics_safe(path: Path) -> dict[str, Any]:
    """Load an Ultralytics checkpoint with its own allow-list loader (`ULTRALYTICS_SAFE_LOAD`'s path)."""
    from ultralytics.nn.tasks import _SafeLoad, torch_safe_load

    if not _SafeLoad.SUPPORTED:  # torch < 2.6: Ultralytics' safe mode would silently fall back to plain pickle
        raise _refusal(path, "it holds pickled Python objects and this torch cannot load them restricted")
    allow_dydet_layers(path)
    try:
        ckpt, _ = torch_safe_load(str(path), safe_only=True)
    except (TypeError, pickle.UnpicklingError, ModuleNotFoundError, AttributeError) as e:
        raise _refusal(path, "it needs Python objects outside the weights-only and Ultralytics allow-lists") from e
    return ckpt


# Where dydet's own layer and static-model classes live: a pickled static YOLOv7-family model names them.
DYDET_CLASS_MODULES = ("dydet.nn.modules", "dydet.nn.tasks")


def allow_dydet_layers(path: Path) -> list[str]:
    """Allow the dydet layer classes a pickled checkpoint names in weights-only loading, as Ultralytics allows its own.

    Only `nn.Module` classes defined in dydet's layer and model modules qualify (e.g. `StaticDetectionModel`,
    `SPPCSPC`, `ReOrg`): restoring one sets its attributes, it runs no code of the file's choosing. Anything else the
    file names stays refused. A pickled `DynamicDetectionModel` still needs more (its layer-range record); dydet
    saves those as model records.

    Args:
        path (Path): The checkpoint about to be loaded.

    Returns:
        (list[str]): The names allowed.
    """
    import importlib

    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip archive: torch.load reports it
        return []
    allowed = []
    for name in needed:
        module, _, attr = name.rpartition(".")
        if module in DYDET_CLASS_MODULES:
            obj = getattr(importlib.import_module(module), attr, None)
            if isinstance(obj, type) and issubclass(obj, torch.nn.Module) and obj.__module__ == module:
                torch.serialization.add_safe_globals([obj])
                allowed.append(name)
    return allowed


def _load_trusted(path: Path) -> dict[str, Any]:
    """Unpickle a checkpoint the user explicitly trusted (Ultralytics' default loader)."""
    from ultralytics.nn.tasks import torch_safe_load

    try:
        ckpt, _ = torch_safe_load(str(path), safe_only=False)
    except Exception as e:
        raise _unreadable(path, e) from e
    return ckpt


def load_raw(path: str | Path, trust: bool | None = None) -> dict[str, Any]:
    """Read a checkpoint file into its dict without rebuilding models (records stay records).

    Args:
        path (str | Path): The checkpoint file.
        trust (bool | None): Allow arbitrary unpickling (unsafe); None uses the current `trusting` setting.

    Returns:
        (dict): The checkpoint dict.
    """
    from dydet.utils.inputs import is_url

    if is_url(path):
        raise CheckpointError(
            f"checkpoint '{path}' is a URL: dydet does not download; fetch the file first and pass its path"
        )
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint '{path}' not found: check the path (train one with 'dydet train')")
    trust = _TRUST.get() if trust is None else trust
    try:
        ckpt = _torch_load_weights_only(path)
    except pickle.UnpicklingError as e:
        if not _needs_globals(path):  # not a torch.save archive, or broken: nothing to trust
            raise _unreadable(path, e) from e
        ckpt = _load_trusted(path) if trust else _load_ultralytics_safe(path)
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, ImportError) as e:
        raise _unreadable(path, e) from e
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint '{path}' holds a {type(ckpt).__name__}, not an Ultralytics/dydet checkpoint")
    return ckpt


def load_checkpoint_dict(path: str | Path, trust: bool | None = None) -> dict[str, Any]:
    """Read a `.pt` file into its checkpoint dict, models rebuilt, refusing anything that would run code.

    Args:
        path (str | Path): The checkpoint file.
        trust (bool | None): Allow arbitrary unpickling (unsafe); None uses the current `trusting` setting.

    Returns:
        (dict): The checkpoint dict; `model` / `ema` are model objects (or None).
    """
    ckpt = load_raw(path, trust)
    path = Path(path)
    for key in MODEL_KEYS:
        if is_model_record(ckpt.get(key)):
            ckpt[key] = build_model(ckpt[key], path)
    if not isinstance(ckpt.get("ema") or ckpt.get("model"), torch.nn.Module):
        raise CheckpointError(f"checkpoint '{path}' holds no model: it is not an Ultralytics/dydet checkpoint")
    return ckpt


def checkpoint_model(ckpt: dict[str, Any]) -> torch.nn.Module:
    """Return the model object stored in a checkpoint dict (EMA first, as Ultralytics does), in float32."""
    return (ckpt.get("ema") or ckpt["model"]).float()


def load_checkpoint(path: str | Path, trust: bool | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Load a checkpoint like `ultralytics.nn.tasks.load_checkpoint`, but safely: (float32 eval model, ckpt dict).

    Args:
        path (str | Path): The checkpoint file.
        trust (bool | None): Allow arbitrary unpickling (unsafe); None uses the current `trusting` setting.

    Returns:
        (tuple[torch.nn.Module, dict]): The model (with `args`, `pt_path`, `task` set) and the checkpoint dict.
    """
    from ultralytics.utils import DEFAULT_CFG_DICT

    ckpt = load_checkpoint_dict(path, trust)
    model = checkpoint_model(ckpt)
    model.args = {**DEFAULT_CFG_DICT, **(ckpt.get("train_args") or {})}
    model.pt_path = str(path)
    model.task = getattr(model, "task", None) or "detect"
    if not hasattr(model, "stride"):
        model.stride = torch.tensor([32.0])
    return model.eval(), ckpt


# ----------------------------------------------------------------------------------------------------------- saving
def pack_checkpoint(ckpt: dict[str, Any]) -> dict[str, Any]:
    """Return `ckpt` in the weights-only form: model objects as records, every other value plain."""
    out = {}
    for k, v in ckpt.items():
        if k in MODEL_KEYS and isinstance(v, torch.nn.Module):
            out[k] = model_record(v)
        elif k in MODEL_KEYS and is_model_record(v):
            out[k] = v
        elif k in {"optimizer", "scaler"}:
            out[k] = v  # state dicts: tensors and numbers
        else:
            out[k] = to_plain(v)
    return out


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename) to disk, where the OS allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` so that a crash at any moment leaves the old file or the new one, never a broken one.

    The bytes go to a temporary file in the same folder, are flushed to disk (fsync) and renamed over `path`.

    Args:
        path (str | Path): The destination.
        data (bytes): The content.

    Returns:
        (Path): `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def remove_partial_writes(folder: str | Path) -> list[Path]:
    """Delete the temporary files `atomic_write_bytes` left in `folder` when its process was killed mid-write.

    Call it only where no other process is writing (e.g. a run's weights folder when the run resumes).

    Args:
        folder (str | Path): The folder of the files written atomically.

    Returns:
        (list[Path]): The files removed.
    """
    removed = []
    for tmp in Path(folder).glob(".*.tmp") if Path(folder).is_dir() else ():
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def serialize_checkpoint(ckpt: dict[str, Any]) -> bytes:
    """Return the bytes of `ckpt` saved in the weights-only form."""
    buffer = io.BytesIO()
    torch.save(pack_checkpoint(ckpt), buffer)
    return buffer.getvalue()


def save_checkpoint(ckpt: dict[str, Any], path: str | Path) -> Path:
    """Save a checkpoint dict in the weights-only form, atomically.

    Args:
        ckpt (dict): The checkpoint (`model` / `ema` as model objects or records).
        path (str | Path): The destination `.pt`.

    Returns:
        (Path): `path`.
    """
    return atomic_write_bytes(path, serialize_checkpoint(ckpt))


# ------------------------------------------------------------------------------------------------------ RNG states
def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Return the random-number states (python, numpy, torch, CUDA, and a data loader's generator) in plain form."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": to_plain(random.getstate()),
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if generator is not None:
        state["loader"] = generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Restore the states `rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and state.get("loader") is not None:
        generator.set_state(state["loader"])


# ------------------------------------------------------------------------------------------------------------- checks
def require_dynamic(model: Any, source: str | Path) -> None:
    """Raise a clear error unless `model` is a dydet dynamic model.

    Args:
        model (Any): The loaded model object.
        source (str | Path): Where it came from, for the message.
    """
    classes = model_classes()
    if type(model) is classes["StaticDetectionModel"]:
        raise CheckpointError(
            f"'{source}' holds a static (single-route) YOLOv7-family model, not a dydet dynamic model: use it with "
            f"dydet.StaticYOLO, or initialise both routes of a Dy model from it: dydet train pretrained={source}"
        )
    if not isinstance(model, tuple(classes.values())):
        kind = type(model).__name__
        raise CheckpointError(
            f"'{source}' holds a {kind}, not a dydet dynamic model; use a dydet checkpoint or YAML "
            f"(an Ultralytics detection checkpoint can initialise one: dydet train pretrained={source})"
        )


def require_detection(model: Any, source: str | Path) -> None:
    """Raise a clear error unless `model` can initialise a dydet model (a dydet or a plain Ultralytics detection model).

    Args:
        model (Any): The loaded model object.
        source (str | Path): Where it came from, for the message.
    """
    from ultralytics.nn.modules import Detect
    from ultralytics.nn.tasks import DetectionModel

    from dydet.nn.tasks import DynamicDetectionModel

    if isinstance(model, DynamicDetectionModel) or (
        isinstance(model, DetectionModel) and type(model.model[-1]) is Detect
    ):
        return
    raise CheckpointError(
        f"pretrained='{source}' holds a {type(model).__name__}, not a detection model: pass an Ultralytics detection "
        f"checkpoint of the same base and scale (e.g. yolo11n.pt for dy-yolo11n) or a dydet checkpoint"
    )
