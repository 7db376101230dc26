"""The public API of the synthetic datasets: `make_dataset`, `load_difficulty` and the cache folder names."""

from __future__ import annotations

import csv
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import yaml

from dydet.data.synthetic.caching import _is_complete, _publish, _refresh_yaml, _remove_stale
from dydet.data.synthetic.presets import _SPLITS, _YAML_NAME, PRESETS
from dydet.data.synthetic.writers import _log, _Spec, _write_images, _write_metadata
from dydet.utils.errors import ArgumentError
from dydet.utils.offline import dydet_home


def default_datasets_dir() -> Path:
    """Cache root for generated datasets.

    Returns:
        ``$DYDET_DATASETS_DIR`` if set, else ``datasets`` in the dydet home (``$DYDET_HOME``, default
        ``~/.cache/dydet``), i.e. ``~/.cache/dydet/datasets`` by default.
    """
    env = os.environ.get("DYDET_DATASETS_DIR")
    return Path(env).expanduser() if env else dydet_home() / "datasets"


def _positive(value: int | None, default: int, what: str, minimum: int = 1) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ArgumentError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _resolve(name: str, seed: int, n_train: int | None, n_val: int | None, imgsz: int | None) -> _Spec:
    if name not in PRESETS:
        raise ArgumentError(f"unknown synthetic dataset preset {name!r}; valid presets: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    return _Spec(
        name=name,
        seed=_positive(seed, 0, "seed", minimum=0),
        n_train=_positive(n_train, preset.n_train, "n_train"),
        n_val=_positive(n_val, preset.n_val, "n_val"),
        imgsz=_positive(imgsz, preset.imgsz, "imgsz", minimum=32),
    )


def make_dataset(
    name: str = "demo",
    root: str | Path | None = None,
    seed: int = 0,
    n_train: int | None = None,
    n_val: int | None = None,
    imgsz: int | None = None,
    force: bool = False,
    verbose: bool = True,
) -> Path:
    """Generate a synthetic detection dataset on first use and return its data YAML.

    The dataset is written to a temporary sibling folder and renamed into place when complete, so an interrupted run
    never leaves a folder that looks finished; a later call regenerates it. A complete folder is reused as is.

    Args:
        name: Preset name, one of ``PRESETS`` (``tiny``, ``demo``, ``bench``).
        root: Cache root; defaults to ``default_datasets_dir()``.
        seed: Non-negative random seed; the same seed and sizes give identical files.
        n_train: Number of training images (default: the preset's).
        n_val: Number of validation images (default: the preset's).
        imgsz: Side of the square images in pixels, at least 32 (default: the preset's).
        force: Regenerate even if a complete dataset exists.
        verbose: Log what happens and show a progress bar while generating.

    Returns:
        Absolute path of the dataset's ``data.yaml``.

    Raises:
        ValueError: If ``name`` is not a preset, or a size or the seed is out of range.
    """
    spec = _resolve(name, seed, n_train, n_val, imgsz)
    root = (Path(root).expanduser() if root is not None else default_datasets_dir()).resolve()
    final = root / spec.dirname
    if not force and _is_complete(final, spec):
        _refresh_yaml(final, spec)
        return final / _YAML_NAME
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale(root, spec.dirname)
    tmp = root / f".{spec.dirname}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    _log(f"Generating synthetic dataset '{name}' (seed {seed}) into {final}", verbose)
    try:
        rows = _write_images(spec, tmp, verbose)
        _write_metadata(spec, tmp, final, rows)
        _publish(tmp, final, spec, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final / _YAML_NAME


def _difficulty_csv(source: str | Path) -> Path:
    """Locate ``difficulty.csv`` from a data YAML, a dataset folder or the CSV itself."""
    p = Path(source).expanduser()
    if p.is_dir():
        return p / "difficulty.csv"
    if p.suffix.lower() == ".csv":
        return p
    if p.suffix.lower() in {".yaml", ".yml"}:
        data = yaml.safe_load(p.read_text()) or {}
        base = Path(data.get("path") or p.parent)
        base = base if base.is_absolute() else p.parent / base
        if not base.is_dir():  # moved without regenerating: the YAML sits in the dataset folder
            base = p.parent
        return base / data.get("difficulty", "difficulty.csv")
    raise ArgumentError(f"expected a data YAML, a dataset folder or difficulty.csv, got {source}")


def load_difficulty(source: str | Path, split: str | None = None) -> dict[str, float]:
    """Per-image difficulty of a generated dataset.

    Args:
        source: The data YAML returned by ``make_dataset``, the dataset folder, or its ``difficulty.csv``.
        split: Only this split (``"train"`` or ``"val"``); all images if None.

    Returns:
        Mapping from image stem (e.g. ``"000384"``, unique across splits, ``int(stem)`` is the COCO image id) to its
        difficulty in ``[0, 1]``.

    Raises:
        FileNotFoundError: If the CSV does not exist.
        ValueError: If ``source`` is none of the accepted kinds or ``split`` is unknown.
    """
    if split is not None and split not in _SPLITS:
        raise ArgumentError(f"unknown split {split!r}; valid splits: {', '.join(_SPLITS)}")
    with open(_difficulty_csv(source), newline="") as f:
        return {Path(r["file"]).stem: float(r["difficulty"]) for r in csv.DictReader(f) if split in (None, r["split"])}
