"""Datasets for dydet: an offline, deterministic synthetic detection dataset of graded difficulty."""

from __future__ import annotations

from typing import Any

__all__ = (
    "CLASS_NAMES",
    "GENERATOR_VERSION",
    "PRESETS",
    "Preset",
    "default_datasets_dir",
    "load_difficulty",
    "make_dataset",
)


def __getattr__(name: str) -> Any:
    """Import `dydet.data.synthetic` lazily, so that ``python -m dydet.data.synthetic`` runs it only once."""
    if name in __all__:
        from dydet.data import synthetic

        return getattr(synthetic, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
