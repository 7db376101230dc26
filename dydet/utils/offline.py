"""Make Ultralytics run offline: `setup_offline()`, called by the ``dydet`` command and by `DynamicYOLO`.

Nothing happens at ``import dydet``. The ``dydet`` command calls `set_offline_env()` before anything imports
Ultralytics and `setup_offline()` before it builds a model; ``from dydet import DynamicYOLO`` calls `setup_offline()`
before it imports Ultralytics, and `DynamicYOLO()` calls it again (a no-op the second time). A script that imports
Ultralytics or dydet's submodules itself should call `setup_offline()` first::

    from dydet.utils.offline import setup_offline

    setup_offline()  # before `import ultralytics` or `from dydet.engine... import ...`

Every setting is a *default*: a variable the user has already set is left alone, and the user's own Ultralytics
settings file (``yolo settings``: loggers such as ``tensorboard``, ``datasets_dir``, ``sync``) is neither replaced
nor changed. What each step prevents (ultralytics 8.4.190):

- ``YOLO_OFFLINE=1``: `ultralytics.utils.is_online()` returns False without resolving ``one.one.one.one`` and
  ``dns.google``. Without it, importing Ultralytics makes two DNS look-ups (`ONLINE = is_online()`), and `ONLINE`
  gates the usage telemetry (`utils.events`), Sentry, the PyPI update check and pip auto-updates, so with it those
  stay off whatever the settings' ``sync`` says. Read once, when Ultralytics is imported.
- ``YOLO_AUTOINSTALL=false``: `check_requirements` never runs ``pip install`` (e.g. when a checkpoint or an export
  format names a missing package); it raises/warns instead. Read once, when Ultralytics is imported.
- ``Arial.ttf`` and ``Arial.Unicode.ttf`` in Ultralytics' config folder (`USER_CONFIG_DIR`, where Ultralytics itself
  would download them), copies of matplotlib's DejaVuSans, written only when missing: `check_font`, called by
  `check_det_dataset` on every train/val and by the plotting code, returns them instead of sending ``requests.head``
  to GitHub and downloading the fonts. ``YOLO_OFFLINE`` does not stop that request.

Not covered: `check_amp` (CUDA training only) loads ``yolo26n.pt`` from `WEIGHTS_DIR` and tries to download it when
missing (one failed attempt offline; dydet does not patch Ultralytics globally to avoid it). Weights given by bare
name (``yolo11n.pt``) and dataset YAMLs with ``download:`` still need the files on disk. A user who sets
``YOLO_OFFLINE=0`` gets Ultralytics' online behaviour as their own settings define it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from dydet.utils.settings import dydet_home, seed_settings

__all__ = ("dydet_home", "set_offline_env", "setup_offline")

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
OFFLINE_ENV = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"}

_done = False
_config_dir: Path | None = None
_own_config_dir = False  # whether dydet chose YOLO_CONFIG_DIR (the user did not set it)
_new_settings = False  # whether dydet's settings file did not exist yet when dydet chose YOLO_CONFIG_DIR


def set_offline_env() -> None:
    """Set ``YOLO_OFFLINE=1``, ``YOLO_AUTOINSTALL=false`` and ``YOLO_CONFIG_DIR`` unless the user set them.

    ``YOLO_CONFIG_DIR`` defaults to the dydet home, so Ultralytics keeps its settings file and fonts there and never
    in the user's own Ultralytics folder. Imports nothing, writes nothing. Must run before Ultralytics is first
    imported, which reads all three once (`setup_offline` calls it first).
    """
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    if "YOLO_CONFIG_DIR" not in os.environ:
        global _own_config_dir
        os.environ["YOLO_CONFIG_DIR"] = str(dydet_home())
        _own_config_dir = True
        global _new_settings
        _new_settings = not (dydet_home() / "Ultralytics" / "settings.json").exists()


def setup_offline() -> Path | None:
    """Make Ultralytics offline for this process; safe to call more than once.

    Sets the environment defaults (`set_offline_env`), warns if Ultralytics was imported too early for them, then
    imports Ultralytics and puts local copies of its fonts into its config folder when they are missing.

    Returns:
        (Path | None): Ultralytics' config folder (`USER_CONFIG_DIR`), or None when the fonts could not be written
            there (read-only folder; a warning says so), in which case Ultralytics may try to download them.
    """
    global _done, _config_dir
    set_offline_env()
    if _done:
        return _config_dir
    _warn_if_too_late()
    from ultralytics.utils import USER_CONFIG_DIR

    _done = True
    if _own_config_dir and _new_settings:
        seed_settings()
    try:
        USER_CONFIG_DIR.mkdir(parents=True, exist_ok=True)
        _install_fonts(USER_CONFIG_DIR)
    except OSError as e:  # never let a cache problem stop a run
        warnings.warn(f"dydet: could not put fonts into Ultralytics' config dir {USER_CONFIG_DIR}: {e}", stacklevel=2)
        return None
    _config_dir = USER_CONFIG_DIR
    return USER_CONFIG_DIR


def _atomic_write(path: Path, write: Callable[[BinaryIO], object], mode: int = 0o644) -> None:
    """Write `path` through a temporary file in the same folder, so concurrent processes never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _local_ttf() -> Path | None:
    """Return matplotlib's bundled DejaVuSans.ttf, found without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or spec.origin is None:
        return None
    ttf = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
    return ttf if ttf.is_file() else None


def _install_fonts(config_dir: Path) -> None:
    """Copy a local TTF into `config_dir` under the names `check_font` looks for, unless already there."""
    missing = [config_dir / name for name in FONT_NAMES if not (config_dir / name).is_file()]
    if not missing or (src := _local_ttf()) is None:
        return
    for dst in missing:
        with open(src, "rb") as f_src:
            _atomic_write(dst, lambda f_dst, f_src=f_src: shutil.copyfileobj(f_src, f_dst))


def _warn_if_too_late() -> None:
    """Warn when Ultralytics was imported before `setup_offline` and found itself online (it may send telemetry)."""
    utils = sys.modules.get("ultralytics.utils")
    if utils is not None and getattr(utils, "ONLINE", False):
        warnings.warn(
            "dydet: Ultralytics was imported before dydet.utils.offline.setup_offline(), so its offline defaults "
            "(YOLO_OFFLINE, YOLO_AUTOINSTALL) do not apply in this process. Call setup_offline() before importing "
            "ultralytics.",
            stacklevel=3,
        )
