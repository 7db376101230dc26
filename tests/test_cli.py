"""The `dydet` command line: parsing, help, error messages and dispatch (no model is built here)."""

import subprocess
import sys
from pathlib import Path

import pytest

import dydet
from dydet import cfg, cli
from dydet.cli import entrypoint, parse_args
from dydet.utils.errors import CheckpointError, DataError, DependencyError, DydetError, MissingFileError


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run `entrypoint(argv)`; return (exit code, stdout, stderr)."""
    try:
        entrypoint(list(argv))
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------------------------------------ parsing
def test_key_value_pairs():
    mode, kw = parse_args(["train", "data=coco8.yaml", "epochs=3", "lr0=1e-3", "imgsz=[320,320]", "cache=False"])
    assert mode == "train"
    assert kw == {"data": "coco8.yaml", "epochs": 3, "lr0": 1e-3, "imgsz": [320, 320], "cache": False}


def test_double_dash_forms_mixed():
    argv = "predict model=best.pt source=img.jpg --threshold 0.4 --conf=0.3 --save-txt --exist-ok --name 007".split()
    mode, kw = parse_args(argv)
    assert mode == "predict"
    assert kw == {
        "model": "best.pt",
        "source": "img.jpg",
        "threshold": 0.4,
        "conf": 0.3,
        "save_txt": True,
        "exist_ok": True,
        "name": "007",  # name/project stay verbatim, as in ultralytics
    }


def test_hyphens_none_null_bools_lists():
    argv = ["val", "model=a.pt", "--hard-ratios", "[0,0.5,1]", "--route", "null", "conf=None", "--no-plots", "rect"]
    assert parse_args(argv)[1] == {"model": "a.pt", "hard_ratios": [0, 0.5, 1], "route": None, "conf": None,
                                   "plots": False, "rect": True}  # fmt: skip
    _, kw = parse_args(["train", "--stage2-epochs", "2", "stage=1"])
    assert kw == {"stage2_epochs": 2, "stage": 1}
    _, kw = parse_args(["train", "--calibrate", "false", "--stage", "all", "imgsz", "=", "320"])
    assert kw == {"calibrate": False, "stage": "all", "imgsz": 320}


def test_flag_followed_by_a_value_or_another_argument():
    argv = ["train", "--cache", "ram", "--save-txt", "rect", "--name", "val", "--no-val", "--amp", "bf16", "--plots"]
    kw = parse_args(argv)[1]
    assert kw == {"cache": "ram", "save_txt": True, "rect": True, "name": "val", "val": False, "amp": "bf16",
                  "plots": True}  # fmt: skip


def test_dydet_values_are_handed_on_as_parsed_and_normalized_by_check_args():
    for argv, key, parsed, checked in [
        (["val", "model=a.pt", "threshold=0"], "threshold", 0, 0.0),  # int accepted for a float
        (["val", "model=a.pt", "hard_ratios=0.5"], "hard_ratios", 0.5, [0.5]),  # scalar -> list
        (["val", "model=a.pt", "--hard-ratios", "0,1"], "hard_ratios", (0, 1), [0, 1]),  # tuple -> list
    ]:
        mode, kw = parse_args(argv)
        assert kw[key] == parsed  # the command only parses ...
        assert cfg.check_args(mode, {k: v for k, v in kw.items() if k != "model"})[key] == checked  # ... once


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--treshold", "0.3"], "'treshold' is not a valid argument. Did you mean 'threshold'?"),
        (["predict", "model=a.pt", "treshold=0.3"], "Did you mean 'threshold'? See 'dydet predict help'."),
        (["train", "epoch=3"], "'epoch' is not a valid argument. Did you mean 'epochs'?"),
        (["predict", "model=a.pt", "--threshold"], "'threshold' needs a value"),
        (["predict", "model=a.pt", "threshold="], "'threshold' is missing a value"),
        # values: checked by the mode method (`dydet.cfg.check_args`), after the model is built
        (["predict", "model=dy-yolo11n.yaml", "threshold=1.5"], "threshold=1.5 is out of range [0, 1]"),
        (["predict", "model=dy-yolo11n.yaml", "route=medium"], "route='medium' is not one of None, easy, hard"),
        (["predict", "model=dy-yolo11n.yaml", "stage=1"], "'stage' does not apply to 'predict' (only to: train)"),
        (["train", "stage=3"], "stage=3 is not one of all, 1, 2"),
        (["train", "epochs=abc"], "'epochs=abc' is of invalid type str"),
        (["train", "imgsz=[320,"], "unmatched '[' or ']' bracket"),
        (["train", "mode=val"], "'mode' is not a valid argument"),
    ],
)
def test_bad_arguments_one_line_exit_2(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("dydet: ") and err.count("\n") == 1, err
    assert message in err


def test_unknown_mode(capsys):
    code, _, err = run_cli(capsys, "trian", "epochs=3")
    assert code == 2
    assert err.startswith("dydet: 'trian' is not a valid mode. Did you mean 'train'?")


# --------------------------------------------------------------------------------------------------------------- help
def test_general_help(capsys):
    for argv in (["help"], [], ["--help"]):
        code, out, _ = run_cli(capsys, *argv)
        assert code == 0
        for word in ("train", "val", "predict", "export", "benchmark", "threshold", "hard_ratio", "epochs"):
            assert word in out


def test_mode_help_lists_dydet_then_ultralytics_arguments(capsys):
    code, out, _ = run_cli(capsys, "train", "help")
    assert code == 0
    assert "model=dy-yolo11n.yaml" in out and "stage=all" in out and "epochs=100" in out and "lr0=0.01" in out
    assert out.index("stage=all") < out.index("epochs=100")
    assert "threshold=" not in out  # not a train argument
    code, out, _ = run_cli(capsys, "predict", "--help")
    assert code == 0 and "threshold=None" in out and "conf=0.25" in out and "source=None" in out
    assert "epochs=" not in out
    assert run_cli(capsys, "help", "val")[1].startswith("dydet val:")


def test_export_help_shows_dydets_defaults_and_formats(capsys):
    code, out, _ = run_cli(capsys, "export", "help")
    assert code == 0 and "format=onnx " in out and "format=torchscript" not in out
    assert "onnx or openvino" in out and "coreml" not in out and "engine" not in out
    assert "simplify=False" in out and "workspace=" not in out and "optimize=" not in out


def test_export_refuses_dynamic_in_one_line(full_run, tmp_path):
    from dydet import DynamicYOLO

    with pytest.raises(DydetError, match=r"dynamic=True is not available.*fixed image size"):
        DynamicYOLO(full_run[0].ckpt_path).export(format="onnx", dynamic=True, project=str(tmp_path), name="x")
    assert not (tmp_path / "x").exists()


def test_baselines_none_is_kept_apart_from_null():
    assert parse_args(["benchmark", "model=b.pt", "baselines=none"])[1]["baselines"] == "none"
    assert parse_args(["benchmark", "model=b.pt", "--baselines", "None"])[1]["baselines"] == "None"
    assert parse_args(["benchmark", "model=b.pt", "baselines=null"])[1]["baselines"] is None
    assert parse_args(["benchmark", "model=b.pt", "baselines=yolo11n.yaml"])[1]["baselines"] == "yolo11n.yaml"
    assert parse_args(["val", "model=b.pt", "conf=none"])[1]["conf"] is None  # other keys: Ultralytics' parsing


def test_version(capsys):
    code, out, _ = run_cli(capsys, "version")
    assert code == 0 and out.startswith("dydet ") and "ultralytics 8.4.190" in out


def test_defaults_file():
    args = cfg.load_args()
    for key in ("stage", "threshold", "hard_ratio", "route", "stage2_epochs", "stage2_lr", "stage2_batch"):
        assert key in args
    assert all(a.help and set(a.modes) <= set(cli.MODES) for a in args.values())
    assert not set(args) & set(cli.ultralytics_defaults()), "dydet arguments must not shadow ultralytics ones"
    defaults = cfg.defaults()
    assert defaults["stage"] == "all" and defaults["calibrate"] is True and defaults["threshold"] is None
    assert defaults["hard_ratios"] == pytest.approx([i / 10 for i in range(11)])
    assert set(cfg.defaults("predict")) == {"threshold", "hard_ratio", "route", "gflops", "latency", "trust_checkpoint"}


# ----------------------------------------------------------------------------------------------------------- dispatch
class FakeModel:
    calls: list = []

    def __init__(self, model):
        self.calls.append(("init", model))

    def __getattr__(self, mode):
        def method(**kw):
            self.calls.append((mode, kw))
            return iter([1, 2]) if mode == "predict" else f"{mode} done"

        return method


@pytest.fixture
def fake_model(monkeypatch):
    FakeModel.calls = []
    monkeypatch.setattr(dydet, "DynamicYOLO", FakeModel, raising=False)
    return FakeModel


def test_dispatch_calls_mode_method(capsys, fake_model):
    assert run_cli(capsys, "train", "data=d.yaml", "--epochs", "1")[0] == 0
    assert fake_model.calls == [("init", "dy-yolo11n.yaml"), ("train", {"data": "d.yaml", "epochs": 1})]

    fake_model.calls = []
    assert run_cli(capsys, "val", "model=best.pt", "--hard-ratio", "0.3")[0] == 0
    assert fake_model.calls == [("init", "best.pt"), ("val", {"hard_ratio": 0.3})]

    fake_model.calls = []
    assert run_cli(capsys, "predict", "model=best.pt", "source=img.jpg", "--threshold", "0.4")[0] == 0
    predict_kw = {"source": "img.jpg", "threshold": 0.4, "save": True, "stream": True}
    assert fake_model.calls == [("init", "best.pt"), ("predict", predict_kw)]


def test_dispatch_needs_model_outside_train(capsys, fake_model):
    code, _, err = run_cli(capsys, "export", "format=onnx")
    assert code == 2 and "'dydet export' needs a model" in err and fake_model.calls == []


@pytest.mark.parametrize(
    "error",
    [
        CheckpointError("hard_ratio needs a calibrated checkpoint, retrain with calibrate=True"),
        MissingFileError("dydet: no such model 'x.pt'"),
        DataError("data YAML 'd.yaml' has no 'val:' entry"),
        DependencyError("ONNX export needs the 'onnx' package"),
        type("FutureError", (DydetError, TypeError), {})("route and threshold are exclusive"),
    ],
)
def test_dydet_errors_print_one_line(capsys, monkeypatch, fake_model, error):
    def boom(**kw):
        raise error

    monkeypatch.setattr(FakeModel, "val", staticmethod(boom), raising=False)
    code, _, err = run_cli(capsys, "val", "model=best.pt")
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("dydet: ") and not err.startswith("dydet: dydet")
    assert str(error).removeprefix("dydet: ") in err

    monkeypatch.setenv("DYDET_DEBUG", "1")
    with pytest.raises(type(error)):
        entrypoint(["val", "model=best.pt"])


@pytest.mark.parametrize(
    "error",
    [
        ValueError("shape mismatch"),
        ValueError("dydet: looks like a message, but it is not a DydetError"),  # no guessing from the text
        FileNotFoundError("weights.pt"),
    ],
)
def test_other_errors_keep_their_traceback(monkeypatch, fake_model, error):
    def boom(**kw):
        raise error

    monkeypatch.setattr(FakeModel, "val", staticmethod(boom), raising=False)
    with pytest.raises(type(error), match=str(error)):
        entrypoint(["val", "model=best.pt"])


def test_api_errors_from_the_cfg_are_one_line(capsys, monkeypatch):
    """The CLI hands values on; the API's check refuses them (here: a mode check): one line, exit 2."""

    class Model(FakeModel):
        def val(self, **kw):
            return cfg.check_args("val", {**kw, "stage": 1})

    monkeypatch.setattr(dydet, "DynamicYOLO", Model, raising=False)
    code, _, err = run_cli(capsys, "val", "model=best.pt")
    assert code == 2 and err == "dydet: 'stage' does not apply to 'val' (only to: train). See 'dydet val help'.\n"


def test_console_script():
    script = Path(sys.executable).parent / "dydet"
    assert script.is_file(), "dydet is not installed in this environment: pip install -e ."
    proc = subprocess.run([str(script), "help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "threshold" in proc.stdout
    proc = subprocess.run([str(script), "train", "--treshold", "0.3"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Did you mean 'threshold'?" in proc.stderr and "Traceback" not in proc.stderr


def test_help_examples_use_what_dydet_makes_offline(capsys):
    from dydet.data.shortcuts import EMBEDDED

    out = run_cli(capsys, "help")[1]
    examples = [line.strip() for line in out.splitlines() if line.startswith("  dydet ")]
    assert examples and len(examples) == len(cli.EXAMPLES)
    made = {cli.FINAL_PT, cli.FINAL_PT.replace("final.pt", "final_onnx")}  # what the train / export examples write
    for example in examples:
        mode, args = parse_args(example.split()[1:])  # parses as written
        assert args.get("data", "tiny") in EMBEDDED, example  # datasets: the embedded ones, generated locally
        assert args.get("model", cli.FINAL_PT) in made, example  # models: what the examples before it write
        assert args.get("baselines", "none") == "none", example  # no static models to fetch
        assert "coco8" not in example and "best.pt" not in example
        assert mode in cli.MODES


@pytest.mark.slow
def test_help_examples_run_offline(tmp_path):
    """Run the examples that need no user file, in order, in a fresh folder (train, val, export, val, benchmark)."""
    dydet = str(Path(sys.executable).with_name("dydet"))
    for example in cli.EXAMPLES:
        if "path/to" in example or " tune " in example:
            continue
        out = subprocess.run([dydet, *example.split()[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=1800)
        assert out.returncode == 0, f"{example}: {out.stderr[-2000:]}"


# ------------------------------------------------------------------------------------------------- checked once, once
def test_a_threshold_on_the_command_line_is_checked_once(capsys, monkeypatch, tmp_path):
    """`dydet predict ... threshold=0.4`: the CLI parses, `check_args` checks, the routing rules trust the value."""
    from PIL import Image

    Image.new("RGB", (32, 32), (90, 120, 150)).save(tmp_path / "img.jpg")
    checked, check = [], cfg.Arg.check

    def counting(arg, value):
        checked.append((arg.name, value))
        return check(arg, value)

    monkeypatch.setattr(cfg.Arg, "check", counting)
    argv = ["predict", "model=dy-yolo11n.yaml", f"source={tmp_path / 'img.jpg'}", "threshold=0.4", "imgsz=32"]
    code, _, err = run_cli(capsys, *argv, "--no-save", f"project={tmp_path}")
    assert code == 0, err
    assert [v for name, v in checked if name == "threshold"] == [0.4]


def test_exit_code_2_for_a_bad_value_and_1_for_a_missing_model(capsys, tmp_path):
    code, _, err = run_cli(capsys, "predict", "model=dy-yolo11n.yaml", "source=x.jpg", "threshold=7")
    assert code == 2 and "threshold=7 is out of range [0, 1]. See 'dydet predict help'." in err
    code, _, err = run_cli(capsys, "predict", f"model={tmp_path / 'missing.pt'}", "source=x.jpg", "threshold=0.4")
    assert code == 1 and "missing.pt" in err and err.count("\n") == 1
