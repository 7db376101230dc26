"""dydet's own Ultralytics settings file, and what it takes from the user's.

dydet points Ultralytics at its own config folder (``YOLO_CONFIG_DIR`` defaults to the dydet home, see
`dydet.utils.offline`), so Ultralytics keeps dydet's settings in ``$DYDET_HOME/Ultralytics/settings.json`` and no
dydet command writes the user's ``settings.json``. When dydet's file is created (first run, or
``dydet settings reset``), it takes the logger switches (`LOGGER_KEYS`) from the user's Ultralytics file, read only,
and ``sync=False``; from then on dydet's file wins for every key.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

# Integration switches a user sets with `yolo settings` and expects dydet to honour (e.g. tensorboard=True)
LOGGER_KEYS = ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")


def dydet_home() -> Path:
    """Return dydet's cache/config folder: ``$DYDET_HOME``, else ``~/.cache/dydet``."""
    return Path(os.environ.get("DYDET_HOME") or Path.home() / ".cache" / "dydet").expanduser()


def user_settings_file() -> Path:
    """Return where Ultralytics keeps the user's own settings when ``YOLO_CONFIG_DIR`` is not set."""
    home = Path.home()
    system = platform.system()
    if system == "Windows":
        root = home / "AppData" / "Roaming"
    elif system == "Darwin":
        root = home / "Library" / "Application Support"
    else:
        root = Path(os.getenv("XDG_CONFIG_HOME") or home / ".config")
    return root / "Ultralytics" / "settings.json"


def is_dydet_settings(file: Path) -> bool:
    """Return whether `file` lies in dydet's home (dydet's own settings), not in the user's Ultralytics folder."""
    return Path(file).resolve().is_relative_to(dydet_home().resolve())


def seed_settings() -> None:
    """Give dydet's settings file the user's logger switches and ``sync=False``; never touches the user's file.

    Does nothing when Ultralytics' settings are not dydet's (Ultralytics was imported before dydet chose its folder).
    """
    from ultralytics.utils import SETTINGS

    if not is_dydet_settings(SETTINGS.file):
        return
    new = {"sync": False}
    try:
        user = json.loads(user_settings_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        user = {}
    if isinstance(user, dict):
        new.update({k: user[k] for k in LOGGER_KEYS if isinstance(user.get(k), bool)})
    if any(SETTINGS.get(k) != v for k, v in new.items()):
        SETTINGS.update(new)
