"""Safe loading: dydet checkpoints load with `torch.load(weights_only=True)`; files that would run code are refused."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ultralytics.nn.tasks import DetectionModel

import dydet  # noqa: F401  (offline settings before ultralytics)
from dydet import DynamicYOLO
from dydet.nn.checkpoint import load_checkpoint, model_record, save_checkpoint
from dydet.nn.tasks import DynamicDetectionModel
from dydet.utils.checkpoint import atomic_write_bytes, load_raw, trusting

DYDET = str(Path(sys.executable).with_name("dydet"))


class Payload:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def tiny_model() -> DynamicDetectionModel:
    return DynamicDetectionModel("dy-yolo11n.yaml", nc=3, verbose=False)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    from dydet.data.synthetic import make_dataset

    return make_dataset("tiny", root=tmp_path_factory.mktemp("datasets"), verbose=False)


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "PAYLOAD_RAN"


@pytest.fixture
def evil_pt(tmp_path, marker) -> Path:
    path = tmp_path / "evil.pt"
    torch.save({"epoch": -1, "model": Payload(marker), "train_args": {}}, path)
    return path


@pytest.fixture
def image(tmp_path) -> Path:
    import cv2
    import numpy as np

    path = tmp_path / "img.jpg"
    cv2.imwrite(str(path), np.full((64, 64, 3), 127, np.uint8))
    return path


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([DYDET, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_round_trip_is_weights_only_and_exact(tmp_path):
    model = tiny_model()
    model.threshold, model.stage = 0.3, 2
    model.calibration = {"scores": [0.1, 0.2], "imgsz": 64}
    path = save_checkpoint({"epoch": -1, "model": model, "train_args": {"data": "x.yaml"}}, tmp_path / "dy.pt")
    raw = torch.load(path, weights_only=True)  # no pickled objects at all
    assert raw["model"]["format"].startswith("dydet.model/")
    loaded, ckpt = load_checkpoint(path)
    assert isinstance(loaded, DynamicDetectionModel)
    assert (loaded.threshold, loaded.stage, loaded.calibration) == (0.3, 2, model.calibration)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        for route in ("easy", "hard"):
            torch.testing.assert_close(loaded(x, route=route)[0], model.eval()(x, route=route)[0])


def test_payload_checkpoint_is_refused_by_the_api(evil_pt, marker):
    with pytest.raises(ValueError, match=r"evil\.pt' is not in a safe format.*trust_checkpoint=True \(unsafe"):
        DynamicYOLO(str(evil_pt))
    assert not marker.exists()


def test_real_checkpoint_with_one_payload_key_is_refused(tmp_path, marker):
    path = tmp_path / "final.pt"
    save_checkpoint({"epoch": -1, "model": tiny_model()}, path)
    ckpt = torch.load(path, weights_only=True)
    ckpt["extra"] = Payload(marker)
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match="not in a safe format"):
        DynamicYOLO(str(path))
    assert not marker.exists()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("activation", "__import__('os').system('touch {marker}')"),
        ("activation", "nn.SiLU(__import__('os').system('touch {marker}'))"),
        ("layer", "torch_load"),
        ("layer", "check_requirements"),
    ],
)
def test_model_yaml_in_a_checkpoint_cannot_run_code(tmp_path, marker, key, value):
    record = model_record(tiny_model())
    if key == "activation":
        record["yaml"]["activation"] = value.format(marker=marker)
    else:
        record["yaml"]["backbone"][0] = [-1, 1, value, [str(marker)]]
    path = tmp_path / "crafted.pt"
    torch.save({"epoch": -1, "model": record}, path)
    with pytest.raises(ValueError, match="not in a safe format"):
        load_checkpoint(path)
    assert not marker.exists()


def test_old_pickled_format_needs_the_explicit_opt_in(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"epoch": -1, "model": tiny_model(), "train_args": {}}, path)  # how dydet used to save
    with pytest.raises(ValueError, match=r"old\.pt' is not in a safe format"):
        DynamicYOLO(str(path))
    model = DynamicYOLO(str(path), trust_checkpoint=True)
    assert isinstance(model.model, DynamicDetectionModel)
    with trusting(True):
        assert isinstance(load_checkpoint(path)[0], DynamicDetectionModel)


def test_official_ultralytics_checkpoint_loads_through_its_safe_loader(tmp_path):
    static = DetectionModel("yolo11n.yaml", nc=6, verbose=False)
    path = tmp_path / "yolo11n.pt"
    torch.save({"epoch": -1, "model": static.half(), "ema": None, "train_args": {"task": "detect"}}, path)
    loaded, _ = load_checkpoint(path)
    assert type(loaded) is DetectionModel


def test_errors_carry_no_ultralytics_advice(tmp_path, evil_pt):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint" * 10)
    for path in (garbage, evil_pt):
        with pytest.raises(ValueError) as e:
            load_raw(path)
        assert "yolo26n" not in str(e.value) and "\n" not in str(e.value)


def test_url_checkpoint_is_refused_without_network():
    with pytest.raises(ValueError, match="does not download"):
        DynamicYOLO("https://127.0.0.1:9/model.pt")


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path, monkeypatch):
    path = atomic_write_bytes(tmp_path / "last.pt", b"old")

    def broken_replace(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_cli_predict_refuses_payload(evil_pt, marker, image, tmp_path):
    out = cli("predict", f"model={evil_pt}", f"source={image}", f"project={tmp_path / 'runs'}", cwd=tmp_path)
    assert out.returncode == 1, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "evil.pt' is not in a safe format" in lines[0] and "trust_checkpoint=True" in lines[0]
    assert not marker.exists()


def test_cli_train_refuses_payload_as_pretrained(evil_pt, marker, tiny_data, tmp_path):
    project = tmp_path / "runs"
    out = cli("train", f"data={tiny_data}", f"pretrained={evil_pt}", f"project={project}", "epochs=1", cwd=tmp_path)
    assert out.returncode == 1, out.stderr[-2000:]
    assert "evil.pt' is not in a safe format" in out.stderr.strip().splitlines()[-1]
    assert len(out.stderr.strip().splitlines()) == 1
    assert not marker.exists()
    assert not project.exists() or not any(project.iterdir())


def test_static_ultralytics_checkpoint_as_pretrained_trains(tiny_data, tmp_path):
    from ultralytics.utils import __version__

    static = DetectionModel("yolo11n.yaml", nc=6, verbose=False)
    path = tmp_path / "yolo11n.pt"  # laid out as Ultralytics' strip_optimizer leaves a released checkpoint
    torch.save(
        {
            "epoch": -1,
            "best_fitness": None,
            "model": static.half(),
            "ema": None,
            "updates": None,
            "optimizer": None,
            "train_args": {"task": "detect", "model": "yolo11n.yaml"},
            "version": __version__,
        },
        path,
    )
    model = DynamicYOLO("dy-yolo11n.yaml")
    model.train(
        data=str(tiny_data),
        pretrained=str(path),
        project=str(tmp_path / "runs"),
        name="p",
        stage=1,
        epochs=1,
        imgsz=64,
        batch=8,
        workers=0,
        device="cpu",
        plots=False,
    )
    for pt in (tmp_path / "runs" / "p" / "weights").glob("*.pt"):
        torch.load(pt, weights_only=True)
    assert model.model.stage == 1


def test_partial_writes_of_a_killed_save_are_removed(tmp_path):
    from dydet.utils.checkpoint import atomic_write_bytes, remove_partial_writes

    atomic_write_bytes(tmp_path / "last.pt", b"whole")
    (tmp_path / ".last.pt.abc123.tmp").write_bytes(b"half")  # what a kill between write and rename leaves
    assert remove_partial_writes(tmp_path) == [tmp_path / ".last.pt.abc123.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    assert remove_partial_writes(tmp_path / "missing") == []
