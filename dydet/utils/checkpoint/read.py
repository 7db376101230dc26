"""Reading a checkpoint file into its dict without running code (models stay records; see `dydet.nn.checkpoint`)."""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import torch

from dydet.utils.checkpoint.calls import layer_calls
from dydet.utils.checkpoint.trust import _TRUST, _refusal
from dydet.utils.errors import CheckpointError, MissingFileError
from dydet.utils.inputs import is_url


def _torch_load_weights_only(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)


# how the two formats `torch.save` writes begin: a zip archive, or (legacy) a pickle of protocol 2 or higher
CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80")


def _unreadable(path: Path, e: BaseException) -> CheckpointError:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        head = CHECKPOINT_MAGIC[0]
    if not head.startswith(CHECKPOINT_MAGIC):  # the loader's own error (e.g. "KeyError: 101") would say nothing
        why = "neither a zip archive nor a pickle, as torch.save writes: a text or other file renamed .pt?"
    else:
        why = " ".join(f"{type(e).__name__}: {e}".split())
        why = why if len(why) <= 60 else why[:57] + "..."
    return CheckpointError(f"checkpoint '{path}' is not a readable PyTorch checkpoint ({why}): use the original file")


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
    calls = layer_calls(path)
    if calls is None:
        raise _refusal(path, "its pickle could not be checked")
    if calls:
        raise _refusal(
            path, f"its pickle builds {calls[0]} with arguments of its own (it could download or exhaust memory)"
        )
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
    if is_url(path):
        raise CheckpointError(
            f"checkpoint '{path}' is a URL: dydet does not download; fetch the file first and pass its path"
        )
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint '{path}' not found: {_missing_hint(path)}")
    trust = _TRUST.get() if trust is None else trust
    calls = [] if trust else layer_calls(path)
    if calls:  # before any loader: safe globals registered earlier in this process would let the call through
        raise _refusal(
            path, f"its pickle builds {calls[0]} with arguments of its own (it could download or exhaust memory)"
        )
    try:
        ckpt = _torch_load_weights_only(path)
    except pickle.UnpicklingError as e:
        if not _needs_globals(path):  # not a torch.save archive, or broken: nothing to trust
            raise _unreadable(path, e) from e
        ckpt = _load_trusted(path) if trust else _load_ultralytics_safe(path)
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, ImportError, KeyError, IndexError) as e:
        raise _unreadable(path, e) from e
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint '{path}' holds a {type(ckpt).__name__}, not an Ultralytics/dydet checkpoint")
    return ckpt


def _missing_hint(path: Path) -> str:
    """Say where a missing checkpoint comes from: Ultralytics weights are fetched by hand, dydet's are trained."""
    if path.name.lower().startswith(("yolo", "rtdetr")):  # an Ultralytics model name, e.g. yolo11n.pt
        return "dydet does not download weights: put the Ultralytics file there first and pass its path"
    return "check the path; 'dydet train' writes the calibrated model to <run>-router/weights/final.pt"
