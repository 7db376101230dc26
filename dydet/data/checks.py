"""Checks of a YOLO detection data YAML before training starts, with one-line errors that name the file and the fix.

`check_detection_dataset` reads the YAML and resolves its paths exactly as Ultralytics' `check_det_dataset` does
(`path:` relative to the working directory, else to the datasets dir; splits relative to `path:`), but it never
downloads anything and it does not open images: it only counts image files per split, so it costs milliseconds
even on large datasets. Unreadable images and malformed label lines are left to Ultralytics, which skips each such
image with a warning naming the file when it builds its label cache.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dydet.utils.errors import ArgumentError, DataError, MissingFileError
from dydet.utils.files import ARCHIVE_SUFFIXES

SPLITS = ("train", "val", "test")
FIX_HINT = "a YOLO data YAML has 'path:' (dataset root), 'train:' and 'val:' (image folders) and 'names:'"


def check_detection_dataset(data: str | Path) -> dict[str, Any]:
    """Validate a YOLO detection data YAML, raising a clear error for anything that would stop training later.

    Checked: the YAML exists and parses to a mapping; it has `train:` and `val:` (or Ultralytics' `validation:`
    alias) and `names:` or `nc:` (consistent with each other); every train/val path exists and every train/val split
    holds at least one image file. Not checked (by design): image contents, label lines, and the `test:` split
    (resolved only; training does not read it).

    URLs (`https://...`) and dataset archives (`.zip`, `.tar`, ...) are not inspected; they are left to Ultralytics
    and an empty dict is returned.

    Args:
        data (str | Path): A data YAML path, a folder holding one data YAML, or a bare dataset name that Ultralytics
            ships (e.g. `coco8`, resolved like Ultralytics does; its images must already be on disk).

    Returns:
        (dict): The parsed YAML with `path`, `train`, `val` (and `test`) resolved to absolute paths as strings,
            `names` as `{int: str}`, `nc`, `channels` (default 3) and `yaml_file`.

    Raises:
        MissingFileError: The YAML, the dataset root or a split path does not exist, or a split has no images (a
            `FileNotFoundError`).
        DataError: The YAML is malformed: not a mapping, a missing or ill-typed key, `names`/`nc` inconsistent (a
            `ValueError`).
        ArgumentError: `data` is not a path.
    """
    if not isinstance(data, (str, Path)):
        raise ArgumentError(f"data={data!r} is invalid: pass the path of a YOLO data YAML ({FIX_HINT})")
    text = str(data).strip()
    if "://" in text or text.lower().endswith(ARCHIVE_SUFFIXES):
        return {}
    file = _find_yaml(text)
    cfg = _load_yaml(file)
    _check_keys(cfg, file)
    root = _dataset_root(cfg, file)
    cfg["path"] = str(root)
    for split in SPLITS:
        entries = cfg.get(split)
        if not entries:
            continue
        paths = _resolve_split(entries, root)
        cfg[split] = [str(p) for p in paths] if isinstance(entries, list) else str(paths[0])
        if split == "test":
            continue  # not used by training: Ultralytics checks it only when asked to validate on it
        for entry, p in zip(entries if isinstance(entries, list) else [entries], paths):
            if p.is_file() and p.suffix[1:].lower() in _image_formats():
                raise DataError(
                    f"data YAML '{file}': {split} path '{p}' is a single image; '{split}:' must be a folder of images "
                    f"or a .txt file listing image paths"
                )
            if not p.exists():
                raise MissingFileError(
                    f"data YAML '{file}': {split} path '{p}' does not exist ('{split}: {entry}' under dataset root "
                    f"'{root}'){_download_hint(cfg, root)}; fix '{split}:' or 'path:' in the YAML"
                )
        if count_images(paths) == 0:
            where = ", ".join(f"'{p}'" for p in paths)
            raise MissingFileError(
                f"data YAML '{file}': the {split} split is empty, no images in {where}; add images there or point "
                f"'{split}:' at a folder of images ({_formats()})"
            )
    return cfg


def count_images(paths: list[Path]) -> int:
    """Count the image files Ultralytics would load from split paths, without opening any of them.

    Mirrors `BaseDataset.get_img_files`: a folder is searched recursively (hidden files and folders skipped, as by
    `glob`), a text file lists one image path per line; only the suffix decides what counts as an image.

    Args:
        paths (list[Path]): Existing folders or image-list text files.

    Returns:
        (int): The number of image files.
    """
    formats = _image_formats()

    def is_image(name: str) -> bool:
        return name.rpartition(".")[-1].lower() in formats

    n = 0
    for p in paths:
        if p.is_dir():
            for _, dirs, files in os.walk(p, followlinks=True):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                n += sum(1 for f in files if not f.startswith(".") and is_image(f))
        else:
            with open(p, encoding="utf-8-sig", errors="replace") as f:
                n += sum(1 for line in f if is_image(line.strip()))
    return n


def _find_yaml(text: str) -> Path:
    """Return the data YAML a `data=` argument names, resolving folders and bare names like Ultralytics."""
    p = Path(text).expanduser()
    if not p.exists() and not p.suffix:
        p = next((q for q in (p.with_suffix(".yaml"), p.with_suffix(".yml")) if q.exists()), p.with_suffix(".yaml"))
    if not p.exists() and len(p.parts) == 1:  # a bare name: Ultralytics also searches its own cfg/ folders
        from ultralytics.utils.checks import check_file

        found = check_file(p.name, download=False, hard=False)
        p = Path(found) if found else p
    if p.is_dir():
        found = sorted(p.glob("*.yaml")) or sorted(p.glob("*.yml"))
        if len(found) != 1:
            what = "no data YAML" if not found else f"{len(found)} YAML files ({', '.join(f.name for f in found)})"
            raise MissingFileError(f"data='{text}' is a folder with {what}: pass the data YAML's path itself")
        p = found[0]
    if not p.is_file():
        raise MissingFileError(f"data YAML '{text}' not found: pass the path of an existing data YAML ({FIX_HINT})")
    return p


def _load_yaml(file: Path) -> dict[str, Any]:
    """Parse a data YAML into a dict, with a one-line error for a syntax error or a non-mapping document."""
    from ultralytics.utils import YAML

    try:
        cfg = YAML.load(file, append_filename=True)
    except Exception as e:  # yaml.YAMLError, UnicodeDecodeError, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"data YAML '{file}' cannot be parsed ({first}): fix its YAML syntax") from e
    if not isinstance(cfg, dict) or set(cfg) <= {"yaml_file"}:
        raise DataError(f"data YAML '{file}' is empty or not a mapping: {FIX_HINT}")
    return cfg


def _check_keys(cfg: dict[str, Any], file: Path) -> None:
    """Check split keys, key types and `names`/`nc` in place (normalising them as Ultralytics does)."""
    from ultralytics.data.utils import DATASET_KEY_TYPES
    from ultralytics.nn.autobackend import check_class_names

    if "val" not in cfg and "validation" in cfg:
        cfg["val"] = cfg.pop("validation")  # the alias Ultralytics accepts (with a warning)
    for key in ("train", "val"):
        if not cfg.get(key):
            raise DataError(
                f"data YAML '{file}' has no '{key}:' entry: add '{key}: images/{key}' (an image folder, a .txt list "
                f"of images, or a list of those, relative to 'path:')"
            )
    for key, types in DATASET_KEY_TYPES.items():
        if cfg.get(key) is not None and not isinstance(cfg[key], types):
            expected = " or ".join("mapping" if t is dict else t.__name__ for t in types)
            raise DataError(
                f"data YAML '{file}': '{key}:' must be a {expected}, not {type(cfg[key]).__name__} ({cfg[key]!r})"
            )
    names, nc = cfg.get("names"), cfg.get("nc")
    if names is None and nc is None:
        raise DataError(
            f"data YAML '{file}' has neither 'names:' nor 'nc:': add the class names, e.g. 'names: {{0: person, "
            f"1: car}}'"
        )
    if nc is not None:
        nc = _positive_int(nc)
        if nc is None:
            raise DataError(f"data YAML '{file}': 'nc: {cfg['nc']}' must be a positive integer (the number of classes)")
        cfg["nc"] = nc
    if names is not None:
        if nc is not None and len(names) != nc:
            raise DataError(
                f"data YAML '{file}': 'names:' has {len(names)} classes but 'nc: {nc}': make them agree (or drop 'nc:')"
            )
        try:
            cfg["names"] = check_class_names(names)
        except (KeyError, ValueError, TypeError) as e:
            raise DataError(
                f"data YAML '{file}': invalid 'names:' ({e.args[0] if e.args else e}): use class ids 0..n-1"
            ) from e
    else:
        cfg["names"] = {i: f"class_{i}" for i in range(nc)}
    cfg["nc"] = len(cfg["names"])
    cfg["channels"] = cfg.get("channels", 3)


def _positive_int(value: Any) -> int | None:
    """Return `value` as an int if it is a positive integer (or integer-like, e.g. '3' or 3.0), else None."""
    if isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return int(f) if f.is_integer() and f >= 1 else None


def _dataset_root(cfg: dict[str, Any], file: Path) -> Path:
    """Return the dataset root as Ultralytics resolves it, with an error if it does not exist.

    That is `path:` (relative to the working directory, else to the datasets dir), or the YAML's own folder when
    `path:` is absent.
    """
    from ultralytics.data import utils as data_utils

    given = cfg.get("path")
    root = Path(given or Path(cfg.get("yaml_file", file)).parent).expanduser()
    if not root.exists() and not root.is_absolute():
        root = (data_utils.DATASETS_DIR / root).resolve()
    if not root.exists():
        raise MissingFileError(
            f"data YAML '{file}': dataset root 'path: {given}' not found (looked for '{root}')"
            f"{_download_hint(cfg, root)}; set 'path:' to the dataset folder (absolute, or relative to the "
            f"working directory or '{data_utils.DATASETS_DIR}')"
        )
    return root.resolve()


def _resolve_split(entries: str | list[str], root: Path) -> list[Path]:
    """Resolve a split's entries against the dataset root exactly as `check_det_dataset` does."""
    if isinstance(entries, list):
        return [(root / str(x)).resolve() for x in entries]
    p = (root / entries).resolve()
    if not p.exists() and entries.startswith("../"):
        p = (root / entries[3:]).resolve()
    return [p]


def _download_hint(cfg: dict[str, Any], root: Path) -> str:
    """Return a hint for YAMLs that expect a download, which dydet (offline) never does."""
    if not cfg.get("download"):
        return ""
    return f" (this YAML has a 'download:' entry, but dydet never downloads: fetch the dataset into '{root}' yourself)"


def _image_formats() -> frozenset[str]:
    """Return the image suffixes (without dot, lower case) Ultralytics loads."""
    from ultralytics.data.utils import IMG_FORMATS

    return frozenset(IMG_FORMATS)


def _formats() -> str:
    """Return the accepted image suffixes as a short string."""
    return ", ".join(f".{s}" for s in sorted(_image_formats()))


__all__ = ["check_detection_dataset", "count_images"]
