"""Shared pytest set-up.

Importing dydet here, before any test module imports ultralytics, puts dydet's offline defaults (YOLO_OFFLINE,
YOLO_AUTOINSTALL, YOLO_CONFIG_DIR, fonts, settings) in force for the whole session, exactly as for a user.
DYDET_HOME is deliberately not redirected: tests reuse the user's dydet cache (e.g. generated datasets) between runs.
Tests that need a clean home (tests/test_offline.py) set DYDET_HOME themselves, in a subprocess.
"""

import dydet  # noqa: F401
