"""Output folders created atomically: training runs, validation and prediction outputs."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from dydet.utils.errors import ArgumentError, WriteError

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
    base = run_path(project, name)
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(base.parent, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "read-only or not writable")
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
    except OSError as e:
        why = os.strerror(e.errno) if e.errno else " ".join(str(e).split())
        raise WriteError(
            f"cannot create the run folder '{base}' ({why}): choose a writable folder with project="
        ) from e


def run_path(project: str | Path, name: str) -> Path:
    """Return `project/name`, refusing a `name` that leads out of `project` (absolute, `..`, a link outside).

    Args:
        project (str | Path): The parent folder.
        name (str): The run name.

    Returns:
        (Path): The resolved folder path.
    """
    root = Path(project).resolve()
    path = (root / str(name)).resolve()
    if not str(name).strip() or Path(str(name)).is_absolute() or path == root or not path.is_relative_to(root):
        raise ArgumentError(f"name={name!r} leads out of project='{root}': use a plain folder name such as name=exp")
    return path


def resume_folder(checkpoint: str | Path, project: Any = None, name: Any = None) -> Path:
    """Return where a resumed run writes: its checkpoint's own run folder, or the `project=`/`name=` the user gave.

    Never a folder named inside the checkpoint (a crafted or copied file would write over another run), and never an
    existing folder that holds another run.

    Args:
        checkpoint (str | Path): The checkpoint being resumed (`<run>/weights/last.pt`).
        project (Any): The user's `project=`, if given.
        name (Any): The user's `name=`, if given.

    Returns:
        (Path): The run folder.
    """
    ckpt = Path(checkpoint).resolve()
    own = ckpt.parent.parent if ckpt.parent.name == "weights" else None
    if not project and not name:
        if own is None:
            raise ArgumentError(
                f"checkpoint '{checkpoint}' is not in a run's weights/ folder: pass project= and name= for the "
                "folder the resumed run writes to"
            )
        return own
    default = own.parent if own is not None else Path.cwd() / "runs" / "detect"
    target = run_path(project or default, name or (own.name if own is not None else "train"))
    if target != own and target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ArgumentError(f"'{target}' already holds another run: resume into a new folder with name=")
    return target


def remove_if_unused(folder: Path, keep_results: bool = True) -> None:
    """Delete a run folder this run created if the failed run left nothing worth keeping (no checkpoint, no results).

    `keep_results=False`: results without a checkpoint are not worth keeping (the run could not write its weights).
    """
    if not folder.is_dir() or any(folder.rglob("*.pt")) or (keep_results and (folder / "results.csv").exists()):
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
    if getattr(args, "name", None):
        run_path(getattr(args, "project", None) or ".", args.name)
    base = get_save_dir(SimpleNamespace(**{**vars(args), "exist_ok": True}))  # the un-numbered folder
    return make_run_dir(base.parent, base.name, exist_ok=bool(getattr(args, "exist_ok", False)))[0]
