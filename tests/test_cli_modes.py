"""`dydet track | tune | settings | checks` on the command line, and `reps=` / `seq=` for `dydet benchmark`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import dydet
from dydet import cfg, cli
from dydet.cli import entrypoint, parse_args

DYDET = str(Path(sys.executable).with_name("dydet"))


class FakeModel:
    calls: list = []

    def __init__(self, model):
        self.calls.append(("init", model))

    def __getattr__(self, mode):
        def method(**kw):
            self.calls.append((mode, kw))
            return iter([1, 2])

        return method


@pytest.fixture
def fake_model(monkeypatch):
    FakeModel.calls = []
    monkeypatch.setattr(dydet, "DynamicYOLO", FakeModel, raising=False)
    return FakeModel


def test_new_modes_are_listed_and_have_help(capsys):
    entrypoint(["help"])
    out = capsys.readouterr().out
    for mode in ("track", "tune", "settings", "checks"):
        assert f"\n  {mode} " in out, mode
    entrypoint(["track", "help"])
    out = capsys.readouterr().out
    assert f"tracker={cli.ultralytics_defaults()['tracker']}" in out and "threshold=None" in out and "conf=0.1" in out
    entrypoint(["tune", "help"])
    out = capsys.readouterr().out
    assert "iterations=10" in out and "lr0=0.01" in out and "model=dy-yolo11n.yaml" in out


def test_track_and_tune_dispatch(fake_model):
    entrypoint(["track", "model=best.pt", "source=v.mp4", "tracker=bytetrack.yaml", "--hard-ratio", "0.3"])
    kw = {"source": "v.mp4", "tracker": "bytetrack.yaml", "hard_ratio": 0.3, "save": True, "stream": True}
    assert fake_model.calls == [("init", "best.pt"), ("track", kw)]
    fake_model.calls = []
    entrypoint(["tune", "data=tiny", "epochs=1", "iterations=2"])
    assert fake_model.calls == [("init", "dy-yolo11n.yaml"), ("tune", {"data": "tiny", "epochs": 1, "iterations": 2})]


def test_benchmark_takes_reps_and_seq():
    assert parse_args(["benchmark", "model=b.pt", "reps=3", "--seq", "4"]) == (
        "benchmark",
        {"model": "b.pt", "reps": 3, "seq": 4},
    )
    with pytest.raises(cli.UsageError, match="reps"):
        cfg.check_args("benchmark", parse_args(["benchmark", "reps=0"])[1])


def test_settings_and_checks_take_their_own_words():
    assert parse_args(["settings", "runs_dir=/x"]) == ("settings", {"args": ["runs_dir=/x"]})
    assert parse_args(["checks"]) == ("checks", {"args": []})
    assert parse_args(["settings", "help"]) == ("help", {})


def _run(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    # a temporary home for dydet and for Ultralytics' settings: `dydet settings` changes the settings file it finds
    env = {**os.environ, "DYDET_HOME": str(tmp_path / "home"), "YOLO_CONFIG_DIR": str(tmp_path / "home")}
    return subprocess.run([DYDET, *argv], capture_output=True, text=True, timeout=300, env=env)


def test_cli_settings_show_update_and_refuse(tmp_path):
    runs = tmp_path / "myruns"
    out = _run(tmp_path, "settings", f"runs_dir={runs}")
    assert out.returncode == 0, out.stderr[-2000:]
    out = _run(tmp_path, "settings")
    assert out.returncode == 0 and str(runs) in out.stdout + out.stderr
    assert str(tmp_path / "home") in out.stdout + out.stderr  # the temporary settings file, not the user's
    out = _run(tmp_path, "settings", "runs_dri=/x")
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "Did you mean 'runs_dir'?" in out.stderr


def test_cli_checks_prints_dydet_state(tmp_path):
    out = _run(tmp_path, "checks")
    assert out.returncode == 0, out.stderr[-2000:]
    log = out.stdout + out.stderr
    for word in ("ultralytics", "torch", "dydet home:", "network:", "device:", "$YOLO_OFFLINE:"):
        assert word in log, word
