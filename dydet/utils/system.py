"""`dydet settings` and `dydet checks`: Ultralytics' settings and system report, plus dydet's own state."""

from __future__ import annotations

import difflib
import os
from importlib import metadata
from typing import Any

from ultralytics.utils import LOGGER, SETTINGS, SETTINGS_FILE

from dydet.utils import offline
from dydet.utils.errors import ArgumentError
from dydet.utils.offline import dydet_home
from dydet.utils.settings import is_dydet_settings, seed_settings

# Environment variables that decide whether dydet (through Ultralytics) may reach the network or pip
OFFLINE_ENV = ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_CONFIG_DIR", "DYDET_HOME")


def handle_settings(args: list[str]) -> dict[str, Any]:
    """Show, update (``key=value``) or reset (``reset``) the Ultralytics settings that dydet runs with.

    dydet keeps these in its own folder (``YOLO_CONFIG_DIR`` defaults to the dydet home), so changing them leaves the
    user's own Ultralytics settings file alone; ``reset`` restores the defaults dydet starts with
    (`dydet.utils.settings.seed_settings`). Unlike ``yolo settings``, a bad key or value is an error.

    Args:
        args (list[str]): The words after ``dydet settings``: none, ``reset``, or ``key=value`` pairs.

    Returns:
        (dict[str, Any]): The settings after the change.

    Raises:
        ValueError: For an unknown key or a value of the wrong type, naming the closest key.
    """
    from ultralytics.cfg import parse_key_value_pair

    if args and offline._own_config_dir and not is_dydet_settings(SETTINGS_FILE):
        raise ArgumentError(
            f"settings: Ultralytics was imported before dydet, so its settings are your own file {SETTINGS_FILE}, "
            "which dydet does not change; use 'yolo settings' for it, or run 'dydet settings' on the command line"
        )
    if args[:1] == ["reset"]:
        SETTINGS_FILE.unlink(missing_ok=True)
        SETTINGS.reset()
        seed_settings()
        LOGGER.info("Settings reset to their defaults")
    elif args:
        new = {}
        for a in args:
            if "=" not in a:
                raise ArgumentError(
                    f"settings: '{a}' is not key=value; e.g. 'dydet settings runs_dir=/path' or 'reset'"
                )
            k, v = parse_key_value_pair(a)
            if k not in SETTINGS:
                match = difflib.get_close_matches(k, list(SETTINGS), n=1)
                hint = f" Did you mean '{match[0]}'?" if match else ""
                raise ArgumentError(f"settings: '{k}' is not a setting.{hint} Settings: {', '.join(SETTINGS)}")
            new[k] = v
        try:
            SETTINGS.update(new)  # checks each value's type against the default's
        except TypeError as e:
            raise ArgumentError(f"settings: {' '.join(str(e).split())}") from None
        for k, v in new.items():
            LOGGER.info(f"Updated '{k}={v}'")
    LOGGER.info(f"Settings file: {SETTINGS_FILE}\n{SETTINGS}")
    return dict(SETTINGS)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def dydet_info() -> dict[str, str]:
    """Return dydet's own state: versions, where it keeps its files, offline settings and the compute device.

    Returns:
        (dict[str, str]): Field name to value, in display order.
    """
    import torch
    from ultralytics.utils import ONLINE

    device = "cpu"
    if torch.cuda.is_available():
        device = f"cuda:0 ({torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} device(s))"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device = "mps"
    info = {
        "dydet": _version("dydet"),
        "ultralytics": _version("ultralytics"),
        "torch": torch.__version__,
        "onnxruntime": _version("onnxruntime"),
        "lap (tracking)": _version("lap"),
        "device": device,
        "dydet home": str(dydet_home()),
        "settings file": str(SETTINGS_FILE),
        "network": "off (YOLO_OFFLINE)" if not ONLINE else "allowed",
        "telemetry (sync)": "on" if ONLINE and SETTINGS.get("sync") else "off",
    }
    info.update({f"${k}": os.environ.get(k, "(unset)") for k in OFFLINE_ENV})
    return info


def run_checks() -> dict[str, Any]:
    """Print Ultralytics' system report (``yolo checks``), then dydet's own state (`dydet_info`).

    Returns:
        (dict[str, Any]): Ultralytics' system information with a ``"dydet"`` entry holding `dydet_info`.
    """
    from ultralytics.utils.checks import collect_system_info

    info = dict(collect_system_info() or {})
    ours = dydet_info()
    width = max(map(len, ours)) + 1
    LOGGER.info("\ndydet\n" + "\n".join(f"{k + ':':<{width}} {v}" for k, v in ours.items()))
    info["dydet"] = ours
    return info
