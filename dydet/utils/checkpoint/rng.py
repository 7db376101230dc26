"""Random-number states saved in a checkpoint, in plain form, so a resumed run continues the same sequence."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from dydet.utils.checkpoint.trust import to_plain


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
