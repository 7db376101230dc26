"""Shared pytest set-up: a temporary home for the whole session, then dydet's offline set-up, as the CLI makes it.

Before anything imports Ultralytics, DYDET_HOME (dydet's dataset cache) and YOLO_CONFIG_DIR (Ultralytics' settings
and fonts) point into a fresh temporary folder, so the tests never read or write the user's ~/.cache/dydet or
Ultralytics settings; then `setup_offline()` sets YOLO_OFFLINE / YOLO_AUTOINSTALL and the local fonts.
tests/test_offline.py checks the set-up itself in fresh interpreters with their own homes.
"""

import os
import tempfile
from pathlib import Path

SESSION_HOME = Path(tempfile.mkdtemp(prefix="dydet-tests-"))
os.environ["DYDET_HOME"] = str(SESSION_HOME / "dydet")
os.environ["YOLO_CONFIG_DIR"] = str(SESSION_HOME / "ultralytics")
os.environ.pop("DYDET_DATASETS_DIR", None)

from dydet.utils.offline import setup_offline  # noqa: E402

setup_offline()


def pytest_sessionfinish(session, exitstatus):
    """Remove the session's temporary home."""
    import shutil

    shutil.rmtree(SESSION_HOME, ignore_errors=True)
