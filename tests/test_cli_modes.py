"""`dydet track | tune | settings | checks` on the command line, and `reps=` / `seq=` for `dydet benchmark`."""

import json
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


def test_cli_settings_never_write_the_users_ultralytics_file(tmp_path):
    # HOME holds the user's own Ultralytics settings; neither YOLO_CONFIG_DIR nor DYDET_HOME is set
    own = tmp_path / ".config" / "Ultralytics" / "settings.json"
    own.parent.mkdir(parents=True)
    own.write_text('{"marked": "the user\'s file", "tensorboard": true}\n')
    before = own.read_bytes()
    env = {k: v for k, v in os.environ.items() if k not in {"YOLO_CONFIG_DIR", "DYDET_HOME", "XDG_CONFIG_HOME"}}
    env["HOME"] = str(tmp_path)
    for argv in (["settings", "reset"], ["settings", f"runs_dir={tmp_path / 'runs'}"], ["checks"]):
        out = subprocess.run([DYDET, *argv], capture_output=True, text=True, timeout=300, env=env)
        assert out.returncode == 0, out.stderr[-2000:]
        assert own.read_bytes() == before
    ours = tmp_path / ".cache" / "dydet" / "Ultralytics" / "settings.json"
    log = out.stdout + out.stderr
    assert f"settings file:     {ours}" in log and "telemetry (sync):  off" in log
    settings = json.loads(ours.read_text())
    assert settings["sync"] is False and settings["tensorboard"] is True  # the user's logger switch carries over


def test_cli_benchmark_baselines_none_measures_no_baselines(full_run, monkeypatch):
    from dydet.engine import model as front_end
    from dydet.engine.benchmarks import default_baselines, parse_baselines

    seen = {}
    monkeypatch.setattr(front_end, "run_benchmark", lambda model, **kw: seen.update(kw))
    mode, args = parse_args(["benchmark", f"model={full_run[0].ckpt_path}", "baselines=none", "imgsz=64"])
    cli.run(mode, args)
    assert seen["baselines"] == "none" and parse_baselines(seen["baselines"]) == []
    assert default_baselines(full_run[0].model)  # without baselines= the family's would be measured
