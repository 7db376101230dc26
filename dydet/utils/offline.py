"""Make ultralytics run offline, without the user doing anything.

`import dydet` calls `setup_offline()` before anything imports ultralytics. Every setting is a *default*: a variable
the user has already set in the environment, or a settings file that already exists, is left alone.

What each setting prevents (ultralytics 8.4.190):

- ``YOLO_OFFLINE=1``: `ultralytics.utils.is_online()` returns False without resolving ``one.one.one.one`` and
  ``dns.google``. Without it, importing ultralytics makes two DNS look-ups (`ONLINE = is_online()`), and `ONLINE`
  gates the telemetry (`utils.events`), Sentry, the PyPI update check and pip auto-updates.
- ``YOLO_AUTOINSTALL=false``: `check_requirements` never runs ``pip install`` (e.g. when a checkpoint or an export
  format names a missing package); it raises/warns instead.
- ``YOLO_CONFIG_DIR=<dydet home>/ultralytics``: ultralytics keeps its settings and fonts in a dydet-owned folder
  (`USER_CONFIG_DIR` is this folder plus ``/Ultralytics``), so the two files below do not touch the user's own
  ultralytics set-up. The dydet home is ``$DYDET_HOME``, else ``~/.cache/dydet``.
- ``Arial.ttf`` and ``Arial.Unicode.ttf`` in `USER_CONFIG_DIR` (copies of matplotlib's DejaVuSans): `check_font`,
  called by `check_det_dataset` on every train/val and by the plotting code, returns them instead of sending
  ``requests.head`` to GitHub and downloading the fonts. ``YOLO_OFFLINE`` does not stop that request.
- ``settings.json`` with ``sync: false`` (written only when missing): turns off the usage telemetry (`utils.events`,
  Google Analytics) and Sentry even where the user sets ``YOLO_OFFLINE=0``. It also pins ``datasets_dir`` and
  ``weights_dir`` under the dydet home instead of "the working directory of the first import".

Not covered by settings: `check_amp` (CUDA training only) loads ``yolo26n.pt`` from `WEIGHTS_DIR` and tries to
download it when missing (one failed attempt offline; dydet does not patch ultralytics globally to avoid it).
Weights given by bare name (``yolo11n.pt``) and dataset YAMLs with ``download:`` still need the files on disk.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

ULTRALYTICS_SUBDIR = "Ultralytics"  # ultralytics appends this to $YOLO_CONFIG_DIR (`get_user_config_dir`)
FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
SETTINGS_VERSION = "0.0.8"  # `SettingsManager` schema of ultralytics 8.4.190; a newer one migrates keeping our values

_done = False


def dydet_home() -> Path:
    """Return dydet's cache/config folder: ``$DYDET_HOME``, else ``~/.cache/dydet``."""
    return Path(os.environ.get("DYDET_HOME") or Path.home() / ".cache" / "dydet").expanduser()


def ultralytics_config_dir() -> Path:
    """Return the folder ultralytics will use as `USER_CONFIG_DIR` under the current ``$YOLO_CONFIG_DIR``."""
    return Path(os.environ["YOLO_CONFIG_DIR"]).expanduser() / ULTRALYTICS_SUBDIR


def setup_offline() -> Path | None:
    """Set ultralytics' offline defaults; safe to call more than once.

    Returns:
        (Path | None): The ultralytics config folder in use, or None when it could not be created (read-only home),
            in which case only the environment variables are set and ultralytics picks its own fallback folder.

    """
    global _done
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(dydet_home() / "ultralytics"))
    config_dir = ultralytics_config_dir()
    if _done:
        return config_dir
    _done = True
    _warn_if_too_late()
    try:
        config_dir.mkdir(parents=True, exist_ok=True)
        _install_fonts(config_dir)
        _write_settings(config_dir / "settings.json")
    except OSError as e:  # never let a cache problem break `import dydet`
        warnings.warn(f"dydet: could not prepare ultralytics config dir {config_dir}: {e}", stacklevel=2)
        return None
    return config_dir


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


def _default_settings() -> dict:
    """Return a complete ultralytics settings dict with telemetry off and data folders under the dydet home."""
    home = dydet_home()
    return {
        "settings_version": SETTINGS_VERSION,
        "datasets_dir": str(home / "datasets"),
        "weights_dir": str(home / "weights"),
        "runs_dir": "runs",  # relative, as ultralytics' own default outside a git checkout: ./runs of each run
        "uuid": hashlib.sha256(str(uuid.getnode()).encode()).hexdigest(),  # same anonymised id ultralytics makes
        "sync": False,
        "api_key": "",
        "openai_api_key": "",
        "clearml": True,
        "comet": True,
        "dvc": True,
        "mlflow": True,
        "raytune": True,
        "tensorboard": False,
        "wandb": False,
        "vscode_msg": True,
        "openvino_msg": True,
    }


def _write_settings(file: Path) -> None:
    """Create ultralytics' settings.json with ``sync: false`` unless a settings file is already there.

    The file lists every key of the schema so that `SettingsManager` loads it as is (a partial file would be
    "migrated" with a warning).
    """
    if file.exists():
        return
    data = json.dumps(_default_settings(), indent=2).encode()
    _atomic_write(file, lambda f: f.write(data), mode=0o600)  # may later hold the user's API key


def _warn_if_too_late() -> None:
    """Warn when ultralytics was imported before dydet and so already probed the network and read its settings."""
    utils = sys.modules.get("ultralytics.utils")
    if utils is None:
        return
    online = getattr(utils, "ONLINE", False)
    settings = getattr(utils, "SETTINGS", None)
    sync = bool(settings.get("sync")) if settings is not None else False
    if online or sync:
        warnings.warn(
            "dydet: ultralytics was imported before dydet, so dydet's offline defaults (YOLO_OFFLINE, "
            "YOLO_CONFIG_DIR, sync=False) do not apply in this process. Import dydet first.",
            stacklevel=3,
        )
