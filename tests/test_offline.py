"""`setup_offline()` makes Ultralytics offline: no network attempt at import, font check, model build or training.

`import dydet` alone does nothing; the CLI, `from dydet import DynamicYOLO` and `DynamicYOLO()` make the set-up, which
leaves the user's own Ultralytics settings (e.g. `tensorboard=True`) as they are. Each check runs in a fresh
interpreter whose socket layer records and refuses every network attempt, with a clean DYDET_HOME and Ultralytics
config dir and none of the YOLO_/DYDET_ environment variables inherited from this pytest process.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np

from dydet.utils import offline

# Installed before anything else runs in the child; AF_UNIX sockets are local IPC and stay allowed.
SOCKET_GUARD = """
import json, os, socket, sys, traceback
ATTEMPTS = []

def _record(name, args):
    frames = [f"{f.filename.split('site-packages/')[-1]}:{f.lineno}" for f in traceback.extract_stack()[-6:-2]]
    ATTEMPTS.append({"call": name, "args": repr(args)[:200], "stack": frames})
    raise OSError(f"network blocked by test: {name}")

def _guard(name):
    return lambda *args, **kwargs: _record(name, args)

_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex

def connect(self, address):
    return _connect(self, address) if self.family == socket.AF_UNIX else _record("socket.connect", address)

def connect_ex(self, address):
    return _connect_ex(self, address) if self.family == socket.AF_UNIX else _record("socket.connect_ex", address)

socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
for _name in ("getaddrinfo", "create_connection", "gethostbyname", "gethostbyname_ex"):
    setattr(socket, _name, _guard(_name))

def report(**extra):
    print("RESULT " + json.dumps({"attempts": ATTEMPTS, **extra}, default=str))
"""


def run_guarded(body: str, home: Path, **env: str) -> dict:
    """Run `body` after the socket guard in a fresh interpreter; return what it passed to `report(...)`."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO_", "DYDET_"))}
    child_env.pop("PYTEST_CURRENT_TEST", None)  # else ultralytics sees a test run and turns telemetry off itself
    child_env.update({"DYDET_HOME": str(home / "dydet"), "YOLO_CONFIG_DIR": str(home / "ultralytics"), **env})
    script = SOCKET_GUARD + textwrap.dedent(body)
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=home, env=child_env, capture_output=True, text=True, timeout=300
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    output = f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0 and lines, f"child failed ({proc.returncode}):\n{output}"
    return json.loads(lines[-1][len("RESULT ") :])


def write_tiny_dataset(root: Path, n: int = 8, size: int = 64) -> Path:
    """Write a YOLO-format dataset of `n` images with two coloured boxes each; return its data YAML."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = np.full((size, size, 3), 114, np.uint8)
        labels = []
        for cls, color in enumerate([(255, 0, 0), (0, 0, 255)]):
            x0, y0 = (int(v) for v in rng.integers(0, size - 26, 2))
            w, h = (int(v) for v in rng.integers(10, 24, 2))
            cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), color, -1)
            labels.append(f"{cls} {(x0 + w / 2) / size:.5f} {(y0 + h / 2) / size:.5f} {w / size:.5f} {h / size:.5f}")
        for split in ("train", "val"):
            cv2.imwrite(str(root / "images" / split / f"{i}.jpg"), img)
            (root / "labels" / split / f"{i}.txt").write_text("\n".join(labels) + "\n")
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n  0: a\n  1: b\n")
    return data


def test_import_dydet_alone_changes_nothing(tmp_path):
    result = run_guarded(
        """
        from pathlib import Path
        before = dict(os.environ)
        import dydet, dydet.cli, dydet.cfg, dydet.utils.offline, dydet.utils.errors
        files = [str(p) for p in Path.cwd().rglob("*")]
        report(env_changed=dict(os.environ) != before, files=files, ultralytics="ultralytics" in sys.modules)
        """,
        tmp_path,
    )
    assert result == {"attempts": [], "env_changed": False, "files": [], "ultralytics": False}


def test_setup_offline_import_build_and_font_check_are_offline(tmp_path):
    result = run_guarded(
        """
        from dydet.utils.offline import setup_offline
        config = setup_offline()
        env = {k: os.environ[k] for k in ("YOLO_OFFLINE", "YOLO_AUTOINSTALL")}
        import ultralytics
        from ultralytics.utils import AUTOINSTALL, ONLINE, USER_CONFIG_DIR
        from ultralytics.utils.checks import check_font
        ultralytics.YOLO("yolo11n.yaml")
        fonts = [str(check_font("Arial.ttf")), str(check_font("Arial.Unicode.ttf"))]
        report(env=env, online=ONLINE, autoinstall=AUTOINSTALL, config=str(USER_CONFIG_DIR), returned=str(config),
               fonts=fonts)
        """,
        tmp_path,
    )
    config = tmp_path / "ultralytics" / "Ultralytics"
    assert result["attempts"] == []
    assert result["env"] == {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"}
    assert result["online"] is False and result["autoinstall"] is False
    assert result["config"] == result["returned"] == str(config)  # the user's own Ultralytics config dir
    assert result["fonts"] == [str(config / "Arial.ttf"), str(config / "Arial.Unicode.ttf")]
    assert not (tmp_path / "dydet").exists()  # nothing written into the dydet home


def test_dynamic_yolo_sets_up_offline_before_ultralytics_loads(tmp_path):
    result = run_guarded(
        """
        from dydet import DynamicYOLO
        from ultralytics.utils import ONLINE
        DynamicYOLO("dy-yolo11n.yaml")
        report(env=os.environ.get("YOLO_OFFLINE"), online=ONLINE)
        """,
        tmp_path,
    )
    assert result == {"attempts": [], "env": "1", "online": False}


def test_the_cli_sets_up_offline_before_ultralytics_loads(tmp_path):
    result = run_guarded(
        """
        from dydet.cli import entrypoint
        entrypoint(["train", "help"])  # parses Ultralytics' default.yaml: imports ultralytics
        from ultralytics.utils import ONLINE
        report(env=os.environ.get("YOLO_OFFLINE"), online=ONLINE, loaded="ultralytics" in sys.modules)
        """,
        tmp_path,
    )
    assert result == {"attempts": [], "env": "1", "online": False, "loaded": True}


def test_user_ultralytics_settings_still_apply(tmp_path):
    run_guarded(  # the user's own `yolo settings tensorboard=True`, made before dydet is ever used
        """
        from ultralytics.utils import SETTINGS
        SETTINGS.update(tensorboard=True, sync=False)
        report()
        """,
        tmp_path,
        YOLO_OFFLINE="1",
    )
    settings = tmp_path / "ultralytics" / "Ultralytics" / "settings.json"
    before = settings.read_text()
    result = run_guarded(
        """
        from dydet import DynamicYOLO
        DynamicYOLO("dy-yolo11n.yaml")
        from ultralytics.utils import SETTINGS
        report(tensorboard=SETTINGS["tensorboard"], file=str(SETTINGS.file))
        """,
        tmp_path,
    )
    assert result == {"attempts": [], "tensorboard": True, "file": str(settings)}
    assert settings.read_text() == before


def test_user_environment_wins(tmp_path):
    own_config = tmp_path / "my-ultralytics"
    result = run_guarded(
        """
        from dydet.utils.offline import setup_offline
        setup_offline()
        env = {k: os.environ[k] for k in ("YOLO_OFFLINE", "YOLO_CONFIG_DIR")}
        from ultralytics.utils import ONLINE
        report(env=env, online=ONLINE)
        """,
        tmp_path,
        YOLO_OFFLINE="0",
        YOLO_CONFIG_DIR=str(own_config),
    )
    assert result["env"] == {"YOLO_OFFLINE": "0", "YOLO_CONFIG_DIR": str(own_config)}
    # With YOLO_OFFLINE=0 ultralytics probes DNS at import; seeing it also proves the guard catches such probes.
    hosts = " ".join(a["args"] for a in result["attempts"])
    assert "one.one.one.one" in hosts and result["online"] is False


def test_training_with_plots_is_offline(tmp_path):
    data = write_tiny_dataset(tmp_path / "data")
    result = run_guarded(
        f"""
        from dydet.utils.offline import setup_offline
        setup_offline()
        from ultralytics import YOLO
        YOLO("yolo11n.yaml").train(data={str(data)!r}, epochs=1, imgsz=64, batch=4, workers=0, device="cpu",
                                   project={str(tmp_path / "runs")!r}, name="t", plots=True)
        report()
        """,
        tmp_path,
    )
    assert result["attempts"] == []
    assert (tmp_path / "runs" / "t" / "weights" / "best.pt").is_file()
    assert (tmp_path / "runs" / "t" / "labels.jpg").is_file()  # plotting ran, so fonts were looked up


def test_setup_offline_keeps_existing_fonts(tmp_path, monkeypatch):
    import ultralytics.utils

    monkeypatch.setattr(ultralytics.utils, "USER_CONFIG_DIR", tmp_path / "Ultralytics")
    monkeypatch.setattr(offline, "_done", False)
    config = offline.setup_offline()
    assert config == tmp_path / "Ultralytics"
    assert all((config / name).stat().st_size > 100_000 for name in offline.FONT_NAMES)
    assert not (config / "settings.json").exists()  # dydet writes no settings

    (config / "Arial.ttf").write_bytes(b"the user's own font")
    monkeypatch.setattr(offline, "_done", False)
    assert offline.setup_offline() == config
    assert (config / "Arial.ttf").read_bytes() == b"the user's own font"  # never overwritten
