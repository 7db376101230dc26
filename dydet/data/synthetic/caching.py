"""The dataset cache: completeness checks, stale temporary folders, and publishing a finished dataset atomically."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import yaml

from dydet.data.synthetic.presets import _MANIFEST, _SPLITS, _YAML_NAME
from dydet.data.synthetic.writers import _Spec, _write_yaml


def _is_complete(folder: Path, spec: _Spec) -> bool:
    """Whether ``folder`` holds a finished dataset of ``spec`` (manifest present, every image and label there)."""
    try:
        manifest = json.loads((folder / _MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("generator_version") != spec.preset.version:
        return False
    for split, n in zip(_SPLITS, (spec.n_train, spec.n_val)):
        for sub in ("images", "labels"):
            d = folder / sub / split
            if not d.is_dir() or sum(1 for _ in d.iterdir()) != n:
                return False
    return (folder / _YAML_NAME).is_file()


def _refresh_yaml(folder: Path, spec: _Spec) -> None:
    """Rewrite the YAML's absolute ``path`` if the dataset folder was moved since it was generated."""
    file = folder / _YAML_NAME
    if (yaml.safe_load(file.read_text()) or {}).get("path") != str(folder):
        tmp = file.with_name(f".{file.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
        _write_yaml(tmp, spec, folder)
        os.replace(tmp, file)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _remove_stale(root: Path, dirname: str) -> None:
    """Remove temporary and trash folders of ``dirname`` left by processes that no longer run."""
    for p in root.glob(f".{dirname}.*-*-*"):
        try:
            pid = int(p.name[len(dirname) + 2 :].split("-")[1])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def _publish(tmp: Path, final: Path, spec: _Spec, force: bool) -> None:
    """Atomically move the finished ``tmp`` folder to ``final`` (replacing an old one only when forced)."""
    if final.exists():
        if not force and _is_complete(final, spec):  # a concurrent run finished first: keep its identical copy
            shutil.rmtree(tmp, ignore_errors=True)
            return
        trash = final.with_name(f".{final.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.rename(final, trash)
        os.rename(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
        return
    try:
        os.rename(tmp, final)
    except OSError:
        if not _is_complete(final, spec):
            raise
        shutil.rmtree(tmp, ignore_errors=True)
