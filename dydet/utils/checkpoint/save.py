"""Atomic writes: a crash at any moment leaves the old file or the new one, never a broken one."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from dydet.utils.errors import DydetError, WriteError

# What a full disk, a full quota or a read-only filesystem raises, whoever writes (Ultralytics' plots and results too)
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


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
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and not isinstance(e, WriteError):
            raise write_error(path, e) from e
        raise
    fsync_dir(path.parent)
    return path


def write_error(path: str | Path, e: OSError) -> WriteError:
    """Return the one-line error for a failed write of `path` (full disk, read-only or unwritable folder)."""
    why = os.strerror(e.errno) if e.errno else " ".join(str(e).split())
    return WriteError(
        f"could not write '{path}' ({why}): free some disk space or choose a writable folder with project="
    )


def as_write_error(e: BaseException, path: str | Path) -> WriteError | None:
    """Return the one-line `WriteError` for `e` when it is a full disk or read-only filesystem (`WRITE_ERRNOS`).

    Args:
        e (BaseException): What a run raised.
        path (str | Path): What was being written, when `e` does not name a file.

    Returns:
        (WriteError | None): The error to raise instead, or None for anything else (raised as it is).
    """
    if not isinstance(e, OSError) or isinstance(e, DydetError) or e.errno not in WRITE_ERRNOS:
        return None
    return write_error(e.filename or path, e)


def writer_alive(tmp: Path) -> bool:
    """Return whether the process that named temporary file `tmp` (`.<name>.<pid>.<random>.tmp`) is still running.

    A file without a process id (written by an older dydet) counts as abandoned.
    """
    parts = tmp.name.split(".")
    pid = parts[-3] if len(parts) >= 5 else ""
    if not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by another user
        return True
    return True


def remove_partial_writes(folder: str | Path) -> list[Path]:
    """Delete the temporary files `atomic_write_bytes` left in `folder` when its writer was killed mid-write.

    Files whose writing process still runs are left alone, so any run may call it on any folder.

    Args:
        folder (str | Path): The folder of the files written atomically.

    Returns:
        (list[Path]): The files removed.
    """
    removed = []
    for tmp in Path(folder).glob(".*.tmp") if Path(folder).is_dir() else ():
        if not writer_alive(tmp):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def remove_abandoned_writes(project: str | Path) -> list[Path]:
    """Delete abandoned temporary files in every run of `project` (`<run>/` and `<run>/weights/`); see above."""
    project = Path(project)
    folders = [*project.glob("*/weights"), *project.glob("*/")] if project.is_dir() else []
    return [tmp for folder in folders for tmp in remove_partial_writes(folder)]
