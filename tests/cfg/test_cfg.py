"""`dydet/cfg`: one loader of default.yaml, applied alike by the CLI and the Python API; one default per sweep."""

import re
from types import SimpleNamespace

import pytest
import yaml

from dydet import DynamicYOLO, cfg
from dydet.cli import mode_help
from dydet.engine.benchmarks import runner as benchmark_module
from dydet.utils.errors import ArgumentError, DydetError, UsageError


def help_value(mode: str, key: str):
    """Return the default `dydet MODE help` shows for `key`, parsed as YAML."""
    m = re.search(rf"^\s+{key}=(\S+)", mode_help(mode), flags=re.MULTILINE)
    assert m, f"'dydet {mode} help' does not show {key}"
    return yaml.safe_load(m[1])


# ----------------------------------------------------------------------------------------------------------- loader
def test_files_live_in_the_package():
    assert cfg.CFG_DIR.name == "cfg" and cfg.CFG_DIR.parent.name == "dydet"
    assert cfg.DEFAULT_CFG_PATH.is_file() and (cfg.DATASETS_DIR / "README.md").is_file()
    assert {"dy-yolo11.yaml", "dy-yolov8.yaml"} <= {p.name for p in cfg.MODELS_DIR.glob("*.yaml")}


def test_every_entry_is_well_formed():
    for arg in cfg.load_args().values():
        assert arg.help and arg.modes, arg.name
        if arg.default is not None:  # a default passes its own checks
            assert arg.check(arg.default) == arg.default, arg.name
    assert "mode_defaults" not in cfg.arg_names()
    assert cfg.mode_defaults("benchmark") and cfg.mode_defaults("export") == {}
    assert cfg.mode_defaults("train") == {"verbose": False}  # a short training log; verbose=True for the rest


def test_check_args_fills_defaults_and_checks_values_like_the_cli():
    out = cfg.check_args("val", {"conf": 0.1, "threshold": 0})
    assert out["conf"] == 0.1 and out["threshold"] == 0.0 and isinstance(out["threshold"], float)
    assert out["hard_ratios"] == cfg.default("hard_ratios") and out["route"] is None
    assert cfg.check_args("val", {"hard_ratios": 0.5})["hard_ratios"] == [0.5]
    assert cfg.check_args("val", {"hard_ratios": None})["hard_ratios"] == cfg.default("hard_ratios")
    assert cfg.check_args("train", {"stage": "1"})["stage"] == 1  # the API accepts the text form too
    assert cfg.check_args("train", {})["calibrate"] is True
    for mode, kwargs, message in [
        ("predict", {"threshold": 1.5}, "threshold=1.5 is out of range [0, 1]"),
        ("predict", {"route": "medium"}, "route='medium' is not one of None, easy, hard"),
        ("val", {"hard_ratios": [0.2, 2]}, "hard_ratios=[0.2, 2] is out of range [0, 1]"),
        ("val", {"stage": 1}, "'stage' does not apply to 'val' (only to: train)"),
        ("train", {"calibrate": "yes"}, "calibrate='yes' must be True or False"),
    ]:
        with pytest.raises(ArgumentError, match=re.escape(message)) as e:
            cfg.check_args(mode, kwargs)
        assert isinstance(e.value, ValueError) and isinstance(e.value, DydetError)
        assert isinstance(e.value, UsageError)  # what the CLI reports with exit code 2


def test_the_api_applies_the_cfg(tmp_path):
    model = DynamicYOLO("dy-yolo11n.yaml")
    with pytest.raises(ArgumentError, match=r"threshold=-1 is out of range"):
        model.predict(source=str(tmp_path), threshold=-1)
    with pytest.raises(ArgumentError, match=r"'stage2_lr' does not apply to 'export'"):
        model.export(stage2_lr=0.1)


# ------------------------------------------------------------------------------------------------ one default per sweep
def test_dydet_val_help_shows_the_hard_ratios_val_runs(monkeypatch):
    model = DynamicYOLO("dy-yolo11n.yaml")
    model.model.calibration = {"scores": [0.2, 0.8]}
    metrics = SimpleNamespace(scores=[0.2, 0.8])
    monkeypatch.setattr(model, "_validate", lambda validator=None, **kw: (metrics, None))
    ran = []
    monkeypatch.setattr(model, "_report_tradeoff", lambda m, v, hard_ratios=None: ran.append(list(hard_ratios)))
    model.val()
    assert ran == [help_value("val", "hard_ratios")] == [cfg.default("hard_ratios")]


def test_dydet_benchmark_help_shows_what_the_benchmark_runs(monkeypatch, tmp_path):
    ran = {}

    def fake_speed(model, save_dir=None, **kwargs):
        ran.update(kwargs)

    monkeypatch.setattr(benchmark_module, "benchmark_speed", fake_speed)
    DynamicYOLO("dy-yolo11n.yaml").benchmark(project=str(tmp_path))
    for key in ("hard_ratios", "imgsz", "batch", "device"):
        assert ran[key] == help_value("benchmark", key), key


def test_benchmark_speed_called_directly_uses_the_same_defaults(monkeypatch):
    seen = {}

    def fake_measure(model, baselines, imgsz, batch, hard_ratios, *rest):
        seen.update(imgsz=imgsz, batch=batch, hard_ratios=hard_ratios)
        raise StopIteration  # stop before any timing

    monkeypatch.setattr(benchmark_module, "_measure", fake_measure)
    with pytest.raises(StopIteration):
        benchmark_module.benchmark_speed("dy-yolo11n.yaml", baselines="none")
    assert seen == {
        "imgsz": help_value("benchmark", "imgsz"),
        "batch": help_value("benchmark", "batch"),
        "hard_ratios": sorted(help_value("benchmark", "hard_ratios")),
    }


def test_tradeoff_table_default_is_the_cfg_sweep(monkeypatch):
    from dydet.utils import tradeoff

    seen = []
    monkeypatch.setattr(tradeoff, "threshold_for_hard_ratio", lambda cal, p: seen.append(p) or 0.5)

    class Metrics:
        scores = [0.1, 0.9]
        losses = {"easy": [1.0, 1.0], "hard": [0.5, 0.5]}

        def routed(self, hard):
            return SimpleNamespace(mean_results=lambda: [0.0, 0.0, 0.0, 0.0])

    tradeoff.tradeoff_table(Metrics(), {"scores": [0.1, 0.9], "gflops": {"easy": 1.0, "hard": 2.0, "router": 0.0}})
    assert seen == help_value("val", "hard_ratios")
