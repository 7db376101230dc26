"""Output folders created atomically: training runs, validation and prediction outputs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

# File endings of a dataset archive (Ultralytics downloads and unpacks these): dydet leaves such a `data=` to it.
ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".xz", ".bz2", ".txz", ".tbz2", ".7z")


def make_run_dir(project: str | Path, name: str, exist_ok: bool = False) -> tuple[Path, bool]:
    """Create a run folder atomically: `project/name`, else `name-2`, `name-3`, ... (the first free one).

    `os.mkdir` either creates the folder or fails because it exists, so two runs started at the same moment with the
    same name never share a folder (Ultralytics checks, then creates).

    Args:
        project (str | Path): The parent folder (created when missing).
        name (str): The run name.
        exist_ok (bool): Reuse `project/name` when it exists.

    Returns:
        (tuple[Path, bool]): The folder, and whether this call created it.
    """
    base = Path(project).resolve() / name
    base.parent.mkdir(parents=True, exist_ok=True)
    if exist_ok:
        existed = base.is_dir()
        base.mkdir(exist_ok=True)
        return base, not existed
    n = 1
    while True:
        path = base if n == 1 else Path(f"{base}-{n}")
        try:
            os.mkdir(path)
            return path, True
        except FileExistsError:
            n += 1


def remove_if_unused(folder: Path) -> None:
    """Delete a run folder this run created if the failed run left nothing worth keeping (no checkpoint, no results)."""
    if not folder.is_dir() or any(folder.rglob("*.pt")) or (folder / "results.csv").exists():
        return
    shutil.rmtree(folder, ignore_errors=True)


def claim_save_dir(args: Any) -> Path:
    """Create the output folder Ultralytics would pick for `args` (`project`/`name`, mode-named), atomically.

    Ultralytics' `get_save_dir` finds the first free `name`, `name2`, ... and creates it later, so two commands
    started together can share a folder; this creates the first free `name`, `name-2`, ... with `make_run_dir`.
    An explicit `args.save_dir` is used as it is.

    Args:
        args (Any): The run's arguments (namespace), with `project`, `name`, `mode`, `task`, `exist_ok`.

    Returns:
        (Path): The folder, existing now.
    """
    from ultralytics.cfg import get_save_dir

    if getattr(args, "save_dir", None):
        return Path(args.save_dir)
    base = get_save_dir(SimpleNamespace(**{**vars(args), "exist_ok": True}))  # the un-numbered folder
    return make_run_dir(base.parent, base.name, exist_ok=bool(getattr(args, "exist_ok", False)))[0]
