"""Files that steer where dydet writes or what it loads, unbounded inputs and silent losses are refused or contained."""

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

import dydet  # noqa: F401  (offline settings before ultralytics)
from dydet import DynamicYOLO
from dydet.engine.exporter import export_onnx
from dydet.nn.backends.format import InvalidExportError
from dydet.nn.backends.runtime import load_export
from dydet.nn.checkpoint import load_checkpoint
from dydet.nn.limits import check_model_size
from dydet.nn.parse import parse_model
from dydet.nn.tasks import DynamicDetectionModel
from dydet.utils.checkpoint import load_raw
from dydet.utils.errors import ArgumentError, CheckpointError, ConfigError, WriteError
from dydet.utils.files import make_run_dir, run_path


def _unfinished(full_run, folder: Path, **train_args) -> Path:
    """A copy of the tiny run's last.pt made to look interrupted, with `train_args` overridden (as a crafted file)."""
    _, _, project = full_run
    ckpt = torch.load(project / "full" / "weights" / "last.pt", weights_only=True)
    ckpt["epoch"], ckpt["optimizer"] = 0, {"state": {}, "param_groups": []}
    ckpt["train_args"] = {**ckpt["train_args"], **train_args}
    path = folder / "weights" / "last.pt"
    path.parent.mkdir(parents=True)
    torch.save(ckpt, path)
    return path


def _resume_dir(path: Path, **overrides) -> Path:
    trainer_cls = DynamicYOLO(str(path)).task_map["detect"]["trainer"]
    trainer = trainer_cls(overrides={"model": str(path), "resume": str(path), **overrides})
    return Path(trainer.save_dir)


def test_resume_writes_beside_its_checkpoint_not_where_the_file_says(full_run, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    path = _unfinished(full_run, tmp_path / "copy", save_dir=str(victim), project=str(tmp_path), name="victim")
    assert _resume_dir(path) == (tmp_path / "copy").resolve()


def test_resume_into_another_existing_run_is_refused(full_run, tmp_path):
    path = _unfinished(full_run, tmp_path / "mine")
    (tmp_path / "other" / "weights").mkdir(parents=True)
    with pytest.raises(ArgumentError, match="already holds another run"):
        _resume_dir(path, project=str(tmp_path), name="other")
    assert _resume_dir(path, project=str(tmp_path), name="fresh") == (tmp_path / "fresh").resolve()


@pytest.mark.parametrize("name", ["../x", "../../x", "/abs/x", "a/../../x"])
def test_name_cannot_leave_project(tmp_path, name):
    with pytest.raises(ArgumentError, match="leads out of project"):
        make_run_dir(tmp_path / "p", name)
    assert run_path(tmp_path / "p", "a/b") == (tmp_path / "p" / "a" / "b").resolve()


def test_predict_name_cannot_leave_project(full_run, tmp_path, tiny_data):
    model, _, _ = full_run
    with pytest.raises(ArgumentError, match="leads out of project"):
        model.predict(
            next((tiny_data.parent / "images" / "val").iterdir()),
            project=str(tmp_path / "p"),
            name="../../x",
            save=True,
        )
    assert not (tmp_path.parent / "x").exists()


def test_stored_yaml_with_a_fetching_layer_is_refused(full_run, tmp_path):
    _, _, project = full_run
    ckpt = torch.load(project / "full" / "weights" / "best.pt", weights_only=True)
    for key in ("model", "ema"):
        if ckpt.get(key):
            ckpt[key]["yaml"]["backbone"][0] = [-1, 1, "TorchVision", [512, "resnet18", "DEFAULT", True, 2]]
    torch.save(ckpt, tmp_path / "tv.pt")
    with pytest.raises(CheckpointError, match="'TorchVision', a layer that can download"):
        load_checkpoint(tmp_path / "tv.pt")


class _Build:
    """A pickle that builds a layer with arguments of its own (as `nn.Linear(200000, 200000)` would)."""

    def __reduce__(self):
        return torch.nn.Linear, (2, 3)


def test_pickle_that_builds_a_layer_is_refused(tmp_path):
    torch.save({"model": _Build(), "epoch": -1}, tmp_path / "build.pt")
    with pytest.raises(CheckpointError, match="builds torch.nn.modules.linear.Linear with arguments"):
        load_raw(tmp_path / "build.pt")


@pytest.mark.parametrize(
    "change, match",
    [
        ({"row": [-1, 200, "C3k2", [64, False]]}, "repeated 200 times"),
        ({"row": [-1, 1, "Conv", [20000, 3, 2]]}, "argument 20000"),
        ({"width_multiple": 1000}, "multiple 1000"),
    ],
)
def test_model_yaml_too_large_is_refused_before_building(change, match):
    d = yaml.safe_load((Path(dydet.__file__).parent / "cfg" / "models" / "dy-yolo11.yaml").read_text())
    d.pop("scales", None)
    d["backbone"] = [change["row"]] + d["backbone"][1:] if "row" in change else d["backbone"]
    d.update({k: v for k, v in change.items() if k != "row"})
    with pytest.raises(ConfigError, match=match):
        check_model_size(d)
    with pytest.raises(ConfigError, match=match):
        parse_model(d, ch=3, verbose=False)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    model = DynamicDetectionModel("dy-yolo11n.yaml", nc=3, verbose=False)
    return export_onnx(model, tmp_path_factory.mktemp("export") / "tiny_onnx", imgsz=64)


def _graph_outside(folder: Path, absolute: bool) -> dict:
    outside = folder.parent / "outside"
    outside.mkdir()
    shutil.copy(folder / "router.onnx", outside / "x.onnx")
    meta = json.loads((folder / "metadata.json").read_text())
    meta["graphs"]["router"]["file"] = str(outside / "x.onnx") if absolute else "../outside/x.onnx"
    return {"graphs": meta["graphs"]}


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: _graph_outside(p, absolute=False), "router graph file '../outside/x.onnx' is not inside"),
        (lambda p: _graph_outside(p, absolute=True), "router graph file .* is not inside"),
        (lambda p: {"names": {}}, "'names' must be a non-empty table"),
        (lambda p: {"imgsz": "abc"}, "'imgsz' must be"),
        (lambda p: {"imgsz": [100000, 100000]}, "'imgsz' must be .* 1 to 8192"),
        (lambda p: {"strides": []}, "'strides' must be a non-empty list"),
    ],
    ids=["graph-up", "graph-absolute", "no-names", "imgsz-text", "imgsz-huge", "no-strides"],
)
def test_export_metadata_that_points_outside_or_is_malformed_is_one_line(exported, tmp_path, change, message):
    folder = Path(shutil.copytree(exported, tmp_path / "copy"))
    meta = json.loads((folder / "metadata.json").read_text())
    meta.update(change(folder))
    (folder / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(InvalidExportError, match=message) as e:
        load_export(folder)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("imgsz", [100000, [64, 100000]])
def test_imgsz_beyond_the_cap_is_one_line(full_run, imgsz):
    model, _, _ = full_run
    with pytest.raises(ArgumentError, match="image sides go from 1 to 8192"):
        model.predict(torch.zeros(1, 3, 64, 64), imgsz=imgsz)


def test_export_imgsz_and_name_are_checked(full_run, tmp_path):
    model, _, _ = full_run
    with pytest.raises(ArgumentError, match="image sides go from 1 to 8192"):
        model.export(format="onnx", imgsz=100000, project=str(tmp_path))
    with pytest.raises(ArgumentError, match="leads out of project"):
        model.export(format="onnx", imgsz=64, project=str(tmp_path / "p"), name="../x")


def test_non_finite_weights_are_refused_naming_the_tensor(full_run, tmp_path):
    _, _, project = full_run
    ckpt = torch.load(project / "full" / "weights" / "best.pt", weights_only=True)
    record = ckpt["ema"] or ckpt["model"]
    name = next(k for k, v in record["state_dict"].items() if v.is_floating_point())
    record["state_dict"][name] = torch.full_like(record["state_dict"][name], float("nan"))
    torch.save(ckpt, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=f"non-finite .* in '{name}'") as e:
        DynamicYOLO(str(tmp_path / "nan.pt"))
    assert "\n" not in str(e.value)


@pytest.fixture
def full_disk(monkeypatch):
    """Every atomic write goes to /dev/full: its flush fails with ENOSPC, as on a full filesystem."""
    import dydet.utils.checkpoint.save as save

    def mkstemp(dir, prefix, suffix):
        return os.open("/dev/full", os.O_WRONLY), str(Path(dir) / f"{prefix}x{suffix}")

    monkeypatch.setattr(save.tempfile, "mkstemp", mkstemp)


def test_predict_onto_a_full_disk_is_one_line_and_reports_nothing_saved(full_run, tmp_path, tiny_data, full_disk):
    model, _, _ = full_run
    image = next((tiny_data.parent / "images" / "val").iterdir())
    with pytest.raises(WriteError, match="No space left on device") as e:
        model.predict(image, project=str(tmp_path / "p"), name="out", save=True)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "p" / "out").exists()


def test_training_onto_a_full_disk_is_one_line_and_removes_its_folder(tiny_data, tmp_path, tiny_train, full_disk):
    with pytest.raises(WriteError, match="No space left on device"):
        DynamicYOLO("dy-yolo11n.yaml").train(
            data=str(tiny_data), project=str(tmp_path), name="full", stage="1", **{**tiny_train, "epochs": 1}
        )
    assert not (tmp_path / "full").exists()


@pytest.mark.parametrize("mode", ["predict", "val"])
def test_unwritable_project_folder_is_one_line(full_run, tmp_path, tiny_data, monkeypatch, mode):
    import dydet.utils.files as files

    model, _, _ = full_run
    monkeypatch.setattr(files.os, "access", lambda path, how: False)  # as a read-only folder (we may run as root)
    with pytest.raises(WriteError, match="cannot create the run folder .*: choose a writable folder") as e:
        if mode == "predict":
            model.predict(next((tiny_data.parent / "images" / "val").iterdir()), project=str(tmp_path), save=True)
        else:
            model.val(data=str(tiny_data), project=str(tmp_path), batch=4)
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_project_that_cannot_hold_folders_is_one_line(tmp_path):
    with pytest.raises(WriteError, match="cannot create the run folder '/proc/x/"):
        make_run_dir("/proc/x", "exp")


def test_text_file_named_pt_is_one_short_line(tmp_path):
    (tmp_path / "notes.pt").write_text("hello, this is text\n")
    with pytest.raises(CheckpointError, match="is not a readable PyTorch checkpoint") as e:
        load_raw(tmp_path / "notes.pt")
    assert "\n" not in str(e.value) and len(str(e.value)) < 200 + len(str(tmp_path))
    assert "text or other file" in str(e.value) and "KeyError" not in str(e.value)  # what it is, not the loader's error


def test_temp_files_name_their_writer_and_only_abandoned_ones_are_removed(tmp_path, monkeypatch):
    import subprocess
    import sys

    import dydet.utils.checkpoint.save as save

    seen = []
    chmod = save.os.chmod
    monkeypatch.setattr(save.os, "chmod", lambda path, mode: (seen.append(Path(path).name), chmod(path, mode)))
    save.atomic_write_bytes(tmp_path / "run" / "weights" / "last.pt", b"x")
    assert seen[0].startswith(f".last.pt.{os.getpid()}.") and seen[0].endswith(".tmp")

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    weights = tmp_path / "run" / "weights"
    dead = weights / f".last.pt.{int(gone.stdout)}.abc.tmp"
    live = [weights / f".best.pt.{os.getpid()}.abc.tmp", weights / ".epoch1.pt.1.abc.tmp"]  # this process, init
    for f in [dead, *live]:
        f.write_bytes(b"half")
    assert save.remove_abandoned_writes(tmp_path) == [dead]
    assert all(f.exists() for f in live)


def test_calibrate_never_rewrites_its_input_and_writes_beside_it(full_run, tmp_path):
    _, _, project = full_run
    given = tmp_path / "x" / "final.pt"
    given.parent.mkdir()
    shutil.copy(project / "full-router" / "weights" / "final.pt", given)
    before = given.read_bytes(), given.stat().st_mtime_ns
    DynamicYOLO(str(given)).train(stage="calibrate", batch=8)
    assert (given.read_bytes(), given.stat().st_mtime_ns) == before
    assert (tmp_path / "x" / "final-2.pt").is_file()
    assert (tmp_path / "x" / "calibration").is_dir() and not (tmp_path / "calibration").exists()


@pytest.mark.parametrize("scores", ["0.1,0.2", [], [0.1, float("nan")]])
def test_calibration_scores_that_are_not_numbers_are_one_line(full_run, tmp_path, scores):
    _, _, project = full_run
    ckpt = torch.load(project / "full-router" / "weights" / "final.pt", weights_only=True)
    for key in ("model", "ema"):
        if ckpt.get(key):
            ckpt[key]["calibration"]["scores"] = scores
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="calibration scores are not a list of numbers") as e:
        DynamicYOLO(str(tmp_path / "bad.pt")).predict(torch.zeros(1, 3, 64, 64), hard_ratio=0.5)
    assert "\n" not in str(e.value)


def test_pickle_that_builds_a_layer_is_refused_even_where_torch_allows_the_layer(tmp_path):
    """Safe globals registered earlier in the process (by any library) must not let a crafted call through."""
    torch.save({"model": _Build(), "epoch": -1}, tmp_path / "build.pt")
    with torch.serialization.safe_globals([torch.nn.Linear]):
        with pytest.raises(CheckpointError, match="builds torch.nn.modules.linear.Linear with arguments"):
            load_raw(tmp_path / "build.pt")


def test_finished_resume_suggests_the_next_stage_beside_its_own_run(full_run, tmp_path):
    """The suggested stage-2 command writes `<run>-router` beside the checkpoint's run, not runs/detect/train-router."""
    import shlex

    _, _, project = full_run
    weights = tmp_path / "copy" / "weights"
    weights.mkdir(parents=True)
    for f in ("best.pt", "last.pt"):  # a finished stage-1 run, copied: its train_args still name the original
        shutil.copy(project / "full" / "weights" / f, weights / f)
    with pytest.raises(ArgumentError, match="there is nothing to resume") as e:
        DynamicYOLO(str(weights / "last.pt")).train(resume=True)
    command = str(e.value).split("Train the router with: ")[1]
    args = dict(a.split("=", 1) for a in shlex.split(command)[2:])
    assert args.pop("stage") == "2" and Path(args["model"]) == (weights / "best.pt").resolve()
    assert Path(args["project"]) / f"{args['name']}-router" == (tmp_path / "copy-router").resolve()


def _video(path: Path, frames: int = 6) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    for i in range(frames):
        writer.write(np.full((64, 64, 3), 40 * i, np.uint8))
    writer.release()
    return path


class _StopsWriting:
    """A video writer that stops writing after two frames without saying so, as OpenCV's does on a full disk."""

    real = cv2.VideoWriter

    def __init__(self, *args, **kwargs):
        self.writer, self.n = self.real(*args, **kwargs), 0

    def isOpened(self):
        return self.writer.isOpened()

    def write(self, image):
        self.n += 1
        if self.n <= 2:
            self.writer.write(image)

    def release(self):
        self.writer.release()


class _CannotOpen(_StopsWriting):
    def isOpened(self):
        return False


@pytest.mark.parametrize(
    "writer, message", [(_StopsWriting, "lacks frames of the 6 written"), (_CannotOpen, "cannot open")]
)
def test_predict_video_that_cannot_be_written_is_one_line_and_reports_nothing_saved(
    full_run, tmp_path, monkeypatch, captured, writer, message
):
    model, _, _ = full_run
    source = _video(tmp_path / "clip.avi")
    monkeypatch.setattr(cv2, "VideoWriter", writer)
    with pytest.raises(WriteError, match=f"could not write '.*clip.avi'.*{message}") as e:
        model.predict(str(source), project=str(tmp_path / "p"), name="out", save=True, imgsz=64)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "p" / "out").exists()
    assert not any("Results saved" in line for line in captured)


def _torchvision_yaml(folder: Path, *weights) -> Path:
    """dy-yolo11 whose first layer is torchvision's resnet18 stem (64 channels, stride 2), with `weights` if given."""
    d = yaml.safe_load((Path(dydet.__file__).parent / "cfg" / "models" / "dy-yolo11.yaml").read_text())
    d["backbone"][0] = [-1, 1, "TorchVision", [64, "resnet18", *weights, True, 7] if weights else [64, "resnet18"]]
    path = folder / "tv.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache; any download fails the test."""

    def download(url, *args, **kwargs):
        raise AssertionError(f"downloaded {url}")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.mark.parametrize("weights", [("DEFAULT",), ("IMAGENET1K_V1",), ()], ids=["DEFAULT", "named", "left-out"])
def test_model_yaml_with_torchvision_weights_is_refused_offline_before_any_download(tmp_path, hub, weights):
    with pytest.raises(ConfigError, match=r"would download .*/resnet18-f37072fd.pth: put that file into .*checkpoints"):
        DynamicYOLO(str(_torchvision_yaml(tmp_path, *weights)))


def test_benchmark_baseline_yaml_with_torchvision_weights_is_refused_offline(tmp_path, hub):
    import ultralytics

    from dydet.engine.benchmarks.candidates import load_static

    d = yaml.safe_load((Path(ultralytics.__file__).parent / "cfg" / "models" / "11" / "yolo11.yaml").read_text())
    d["backbone"][0] = [-1, 1, "TorchVision", [64, "resnet18", "DEFAULT", True, 7]]
    (tmp_path / "yolo11n-tv.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    with pytest.raises(ConfigError, match=r"baseline YAML .*yolo11n-tv.yaml' layer 0 .*would download"):
        load_static(str(tmp_path / "yolo11n-tv.yaml"), nc=2)
    assert load_static("yolo11n.yaml", nc=2).yaml["nc"] == 2  # a plain baseline still builds


def test_torchvision_layer_without_weights_or_with_cached_weights_or_allowed_online_is_built(
    tmp_path, hub, monkeypatch
):
    from dydet.nn.parse import check_downloads

    for weights in (None, False, "None"):
        DynamicYOLO(str(_torchvision_yaml(tmp_path, weights)))
    d = yaml.safe_load(_torchvision_yaml(tmp_path, "DEFAULT").read_text())
    hub.mkdir(parents=True)
    (hub / "resnet18-f37072fd.pth").write_bytes(b"")  # torchvision reads the cache and fetches nothing
    check_downloads(d)
    (hub / "resnet18-f37072fd.pth").unlink()
    monkeypatch.setenv("YOLO_OFFLINE", "0")  # the user's own choice
    check_downloads(d)


def _tampered(path: Path, folder: Path) -> Path:
    """A copy of checkpoint `path` whose data.pkl has bytes overwritten in its middle."""
    import zipfile

    out = folder / "tampered.pt"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("data.pkl"):
                data = data[: len(data) // 2] + b"\x00garbage" + data[len(data) // 2 + 8 :]
            dst.writestr(info, data)
    return out


def _string_scores(path: Path, folder: Path) -> Path:
    ckpt = torch.load(path, weights_only=True)
    for key in ("model", "ema"):
        if ckpt.get(key):
            ckpt[key]["calibration"]["scores"] = "0.1,0.2"
    torch.save(ckpt, folder / "strscores.pt")
    return folder / "strscores.pt"


def _bad_export(exported: Path, folder: Path, **change) -> Path:
    copy = Path(shutil.copytree(exported, folder / "export"))
    meta = json.loads((copy / "metadata.json").read_text())
    (copy / "metadata.json").write_text(json.dumps({**meta, **change}))
    return copy


def _text_pt(folder: Path) -> Path:
    (folder / "notes.pt").write_text("hello, this is text\n")
    return folder / "notes.pt"


BENCH = ("imgsz=64", "baselines=none", "reps=1", "seq=1", "hard_ratios=[0]")
UNWRITABLE = "choose a writable folder with project="
FINAL, YAML = (lambda f, e, t: f), (lambda f, e, t: "dy-yolo11n.yaml")
# mode, model= (from the tiny run's final.pt, its ONNX export, tmp_path), further arguments, part of the message
CLI_CASES = {
    "proc-train": ("train", YAML, ("data={data}", "imgsz=64", "project=/proc/x"), UNWRITABLE),
    "proc-export": ("export", FINAL, ("imgsz=64", "project=/proc/x"), UNWRITABLE),
    "proc-benchmark": ("benchmark", FINAL, (*BENCH, "project=/proc/x"), UNWRITABLE),
    "read-only-train": ("train", YAML, ("data={data}", "imgsz=64", "project={ro}"), UNWRITABLE),
    "read-only-val": ("val", FINAL, ("data={data}", "imgsz=64", "project={ro}"), UNWRITABLE),
    "read-only-predict": ("predict", FINAL, ("source={image}", "imgsz=64", "project={ro}"), UNWRITABLE),
    "read-only-export": ("export", FINAL, ("imgsz=64", "project={ro}"), UNWRITABLE),
    "read-only-benchmark": ("benchmark", FINAL, (*BENCH, "project={ro}"), UNWRITABLE),
    "text-pt": ("val", lambda f, e, t: _text_pt(t), ("data={data}",), "is not a readable PyTorch checkpoint"),
    "string-scores": ("predict", lambda f, e, t: _string_scores(f, t), ("source={image}", "hard_ratio=0.5"), "scores"),
    "no-names": ("predict", lambda f, e, t: _bad_export(e, t, names={}), ("source={image}",), "'names' must"),
    "text-imgsz": ("val", lambda f, e, t: _bad_export(e, t, imgsz="abc"), ("data={data}",), "'imgsz' must"),
    "no-strides": ("benchmark", lambda f, e, t: _bad_export(e, t, strides=[]), BENCH[1:], "'strides' must"),
    "tampered-pkl": ("export", lambda f, e, t: _tampered(f, t), ("imgsz=64",), "is not a readable PyTorch checkpoint"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_bad_files_and_unwritable_folders_are_one_line_through_the_command(
    full_run, exported, tiny_data, tmp_path, capsys, monkeypatch, case
):
    """Each case of a bad file or a folder dydet cannot write, as a user types it: one `dydet:` line, exit code 1."""
    import dydet.utils.files as files
    from dydet.cli import entrypoint

    mode, model, args, message = CLI_CASES[case]
    _, _, project = full_run
    if "{ro}" in " ".join(args):
        monkeypatch.setattr(files.os, "access", lambda path, how: False)  # a read-only folder (we may run as root)
    model = model(project / "full-router" / "weights" / "final.pt", exported, tmp_path)
    image = next((tiny_data.parent / "images" / "val").iterdir())
    argv = [mode, f"model={model}", *(a.format(ro=tmp_path / "ro", image=image, data=tiny_data) for a in args)]
    with pytest.raises(SystemExit) as e:
        entrypoint(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 1 and err.startswith("dydet: ") and "\n" not in err and message in err, err
    assert not (tmp_path / "ro").exists() or not any((tmp_path / "ro").iterdir())
