"""Checkpoint trust and plain values: the record format, the `trust_checkpoint=` switch, `to_plain`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dydet.utils.errors import CheckpointError

MODEL_FORMAT = "dydet.model/1"
MODEL_KEYS = ("model", "ema")
TRUST_ARG = "trust_checkpoint"
_TRUST: ContextVar[bool] = ContextVar("dydet_trust_checkpoint", default=False)


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


def is_model_record(obj: Any) -> bool:
    """Return whether `obj` is a dydet model record."""
    return isinstance(obj, dict) and obj.get("format") == MODEL_FORMAT
