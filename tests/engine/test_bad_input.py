"""Bad input through the Python API: one-line errors that name the file and the problem, and no damaged runs.

One stage-1 run (`run_a`) is trained once per module and shared: it is the checkpoint the routing-argument tests load,
and the run that failed starts must leave byte-identical.
"""

import hashlib
import io
import logging
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from dydet import DynamicYOLO
from dydet.data.checks import check_detection_dataset, count_images

TRAIN = {"epochs": 1, "imgsz": 64, "batch": 8, "workers": 0, "device": "cpu", "plots": False, "stage": 1}


# ------------------------------------------------------------------------------------------------------------ helpers
def snapshot(run: Path) -> dict[str, str]:
    """Return {relative path: sha256} of every file under a run folder."""
    return {
        str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.rglob("*"))
        if p.is_file()
    }


def write_yaml(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def data_cfg(data: Path) -> dict:
    """The tiny dataset's YAML with an absolute `path:`, minus dydet's extra keys."""
    cfg = yaml.safe_load(data.read_text())
    return {k: cfg[k] for k in ("path", "train", "val", "names")}


def save_ultralytics_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    """Save `model` the way a stripped Ultralytics checkpoint is laid out (see `BaseTrainer.save_model`)."""
    torch.save(
        {
            "epoch": -1,
            "best_fitness": None,
            "model": model.half(),
            "ema": None,
            "updates": None,
            "optimizer": None,
            "train_args": {"task": getattr(model, "task", "detect")},
            "date": "2025-01-01T00:00:00",
            "version": "8.4.190",
        },
        path,
    )
    return path


@pytest.fixture
def ultralytics_log():
    """Capture the Ultralytics logger (it does not propagate to the root logger, so caplog misses it)."""
    from ultralytics.utils import LOGGER

    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)
    LOGGER.addHandler(handler)
    yield buffer
    LOGGER.removeHandler(handler)


# ----------------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bad_input")


@pytest.fixture(scope="module")
def project(workdir) -> Path:
    return workdir / "runs"


@pytest.fixture(scope="module")
def run_a(tiny_data, project) -> Path:
    """A successful stage-1 run whose files must never change afterwards."""
    DynamicYOLO("dy-yolo11n.yaml").train(data=str(tiny_data), project=str(project), name="A", **TRAIN)
    run = project / "A"
    assert (run / "weights" / "best.pt").is_file() and (run / "weights" / "last.pt").is_file()
    return run


@pytest.fixture(scope="module")
def run_a_files(run_a) -> dict[str, str]:
    """Hashes of run A's files, taken right after training."""
    return snapshot(run_a)


@pytest.fixture(scope="module")
def stage1(run_a) -> DynamicYOLO:
    return DynamicYOLO(str(run_a / "weights" / "best.pt"))


@pytest.fixture(scope="module")
def bad_data(tiny_data, workdir) -> dict[str, Path]:
    """Data YAMLs that must be refused before training starts."""
    root = workdir / "yamls"
    root.mkdir()
    cfg = data_cfg(tiny_data)
    empty = workdir / "empty_val"
    shutil.copytree(tiny_data.parent / "images" / "train", empty / "images" / "train")
    (empty / "images" / "val").mkdir(parents=True)
    (empty / "images" / "val" / "notes.txt").write_text("not an image")
    return {
        "nowhere": write_yaml(root / "nowhere.yaml", {**cfg, "path": str(workdir / "no_such_dataset")}),
        "missing_val_dir": write_yaml(root / "missing_val_dir.yaml", {**cfg, "val": "images/validation"}),
        "empty_val": write_yaml(root / "empty_val.yaml", {**cfg, "path": str(empty)}),
        "no_val_key": write_yaml(root / "no_val_key.yaml", {k: v for k, v in cfg.items() if k != "val"}),
        "no_names": write_yaml(root / "no_names.yaml", {k: v for k, v in cfg.items() if k != "names"}),
        "nc_mismatch": write_yaml(root / "nc_mismatch.yaml", {**cfg, "nc": 3}),
        "not_yaml": write_text(root / "not_yaml.yaml", "train: [images/train\nval: images/val\n"),
        "absent": root / "absent.yaml",
    }


@pytest.fixture(scope="module")
def classification_pt(workdir) -> Path:
    from ultralytics.nn.tasks import ClassificationModel

    return save_ultralytics_checkpoint(ClassificationModel("yolo11n-cls.yaml", nc=3, verbose=False), workdir / "cls.pt")


@pytest.fixture(scope="module")
def static_detection_pt(workdir) -> Path:
    from ultralytics.nn.tasks import DetectionModel

    return save_ultralytics_checkpoint(DetectionModel("yolo11n.yaml", nc=6, verbose=False), workdir / "static.pt")


@pytest.fixture(scope="module")
def garbage_pt(workdir) -> Path:
    path = workdir / "garbage.pt"
    path.write_bytes(b"\x00\x01 definitely not a checkpoint " * 64)
    return path


# ------------------------------------------------------------------------------------------------- bad data, via API
# (case, exception, regex the message must match besides the file name)
DATA_CASES = [
    ("nowhere", FileNotFoundError, r"no_such_dataset.*not found"),
    ("missing_val_dir", FileNotFoundError, r"val path .*images/validation.* does not exist"),
    ("empty_val", FileNotFoundError, r"val split is empty"),
    ("no_val_key", ValueError, r"no 'val:'"),
    ("no_names", ValueError, r"neither 'names:' nor 'nc:'"),
    ("nc_mismatch", ValueError, r"'names:' has 6 classes but 'nc: 3'"),
    ("not_yaml", ValueError, r"cannot be parsed"),
    ("absent", FileNotFoundError, r"not found"),
]


@pytest.mark.parametrize(("case", "error", "match"), DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_train_refuses_bad_data_yaml(case, error, match, bad_data, project):
    data = bad_data[case]
    with pytest.raises(error, match=match) as info:
        DynamicYOLO("dy-yolo11n.yaml").train(data=str(data), project=str(project), name=f"bad-{case}", **TRAIN)
    message = str(info.value)
    assert data.name in message and "\n" not in message
    assert not (project / f"bad-{case}").exists(), "a refused start must not leave a run folder behind"


@pytest.mark.parametrize(("case", "error", "match"), DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_check_detection_dataset_messages(case, error, match, bad_data):
    with pytest.raises(error, match=match) as info:
        check_detection_dataset(bad_data[case])
    assert bad_data[case].name in str(info.value) and "\n" not in str(info.value)


# ------------------------------------------------------------------------------------ check_detection_dataset itself
def test_check_returns_resolved_dataset(tiny_data):
    cfg = check_detection_dataset(tiny_data)
    root = tiny_data.parent
    assert cfg["path"] == str(root)
    assert cfg["train"] == str(root / "images" / "train") and cfg["val"] == str(root / "images" / "val")
    assert cfg["nc"] == 6 and cfg["names"][0] == "circle" and cfg["channels"] == 3
    assert count_images([Path(cfg["train"])]) == 24 and count_images([Path(cfg["val"])]) == 12


def test_check_resolves_like_ultralytics(tiny_data, tmp_path, monkeypatch):
    from ultralytics.data.utils import check_det_dataset

    # no `path:` (root = the YAML's folder), a list split, a .txt image list, Ultralytics' `validation:` alias
    root = tmp_path / "ds"
    shutil.copytree(tiny_data.parent / "images", root / "images")
    listing = root / "val.txt"
    listing.write_text("\n".join(f"./images/val/{p.name}" for p in sorted((root / "images" / "val").iterdir())))
    cfg = {"train": ["images/train", "images/val"], "validation": "val.txt", "nc": 6}
    data = write_yaml(root / "data.yaml", cfg)
    ours, theirs = check_detection_dataset(data), check_det_dataset(str(data))
    for key in ("train", "val", "nc", "names"):
        assert ours[key] == theirs[key], key
    assert str(theirs["path"]) == ours["path"]
    assert count_images([Path(p) for p in ours["train"]]) == 36 and count_images([listing]) == 12
    # a relative `path:` resolves against the working directory first, as in Ultralytics
    monkeypatch.chdir(tmp_path)
    rel = write_yaml(tmp_path / "rel.yaml", {"path": "ds", "train": "images/train", "val": "images/val", "nc": 6})
    assert check_detection_dataset(rel)["path"] == str(root) == str(Path(check_det_dataset(str(rel))["path"]).resolve())
    # a folder holding one data YAML is accepted
    assert check_detection_dataset(root)["yaml_file"] == str(data)


def test_check_never_opens_images(tiny_data, monkeypatch):
    import cv2
    from PIL import Image

    def refuse(*args, **kwargs):
        raise AssertionError("check_detection_dataset must not decode images")

    monkeypatch.setattr(cv2, "imread", refuse)
    monkeypatch.setattr(Image, "open", refuse)
    assert check_detection_dataset(str(tiny_data))["nc"] == 6


def test_check_points_out_single_image_split(tiny_data, tmp_path):
    image = next((tiny_data.parent / "images" / "val").iterdir())
    data = write_yaml(tmp_path / "one.yaml", {**data_cfg(tiny_data), "val": f"images/val/{image.name}"})
    with pytest.raises(ValueError, match=r"is a single image"):
        check_detection_dataset(data)


def test_check_hints_at_download_key(tiny_data, tmp_path):
    cfg = {**data_cfg(tiny_data), "path": str(tmp_path / "coco-like"), "download": "https://example.com/x.zip"}
    with pytest.raises(FileNotFoundError, match=r"'download:'.*dydet never downloads"):
        check_detection_dataset(write_yaml(tmp_path / "dl.yaml", cfg))


# ----------------------------------------------------------------------------- bad images and labels: warn and train
def test_corrupt_image_and_bad_labels_are_skipped_with_a_warning(tiny_data, project, workdir, ultralytics_log):
    root = workdir / "corrupt"
    shutil.copytree(tiny_data.parent, root)
    for cache in root.glob("labels/*.cache"):
        cache.unlink()
    images, labels = sorted((root / "images" / "train").iterdir()), root / "labels" / "train"
    images[0].write_bytes(b"this is not a jpeg" * 20)
    (labels / f"{images[1].stem}.txt").write_text("0 0.5 0.5 -0.2 0.2\n")  # negative width
    (labels / f"{images[2].stem}.txt").write_text("0 0.5 0.5 0.2\n")  # 4 fields instead of 5
    data = write_yaml(root / "data.yaml", {**data_cfg(tiny_data), "path": str(root)})

    assert check_detection_dataset(data)["nc"] == 6  # the pre-flight check leaves these to Ultralytics
    # (a class id beyond the YAML's classes is refused up front instead: tests/utils/test_inputs.py)
    DynamicYOLO("dy-yolo11n.yaml").train(data=str(data), project=str(project), name="corrupt", **TRAIN)

    assert (project / "corrupt" / "weights" / "last.pt").is_file()
    log = ultralytics_log.getvalue()
    for image, reason in ((images[0], ""), (images[1], "negative"), (images[2], "5 columns")):
        lines = [line for line in log.splitlines() if f"{image.name}: ignoring corrupt image/label" in line]
        assert lines, f"no warning names {image.name}"
        assert reason in lines[0]


# ---------------------------------------------------------------------------------------------- bad checkpoints
def test_classification_checkpoint_as_pretrained(classification_pt, tiny_data, project):
    with pytest.raises(ValueError, match=r"ClassificationModel.*detection"):
        DynamicYOLO("dy-yolo11n.yaml").train(
            data=str(tiny_data), pretrained=str(classification_pt), project=str(project), name="cls", **TRAIN
        )


def test_garbage_checkpoint_as_pretrained(garbage_pt, tiny_data, project):
    with pytest.raises(ValueError, match=r"garbage\.pt' is not a readable PyTorch checkpoint"):
        DynamicYOLO("dy-yolo11n.yaml").train(
            data=str(tiny_data), pretrained=str(garbage_pt), project=str(project), name="garbage", **TRAIN
        )
    assert not (project / "garbage").exists()


def test_missing_checkpoint_as_pretrained(tiny_data, project, workdir):
    with pytest.raises(FileNotFoundError, match=r"no_such\.pt"):
        DynamicYOLO("dy-yolo11n.yaml").train(
            data=str(tiny_data), pretrained=str(workdir / "no_such.pt"), project=str(project), name="nopt", **TRAIN
        )
    assert not (project / "nopt").exists()


def test_static_detection_checkpoint_is_not_a_dydet_model(static_detection_pt):
    with pytest.raises(ValueError, match=r"static\.pt' holds a DetectionModel, not a dydet"):
        DynamicYOLO(str(static_detection_pt))


def test_garbage_and_missing_model_files(garbage_pt, workdir):
    with pytest.raises(ValueError, match=r"not a readable PyTorch checkpoint"):
        DynamicYOLO(str(garbage_pt))
    with pytest.raises(FileNotFoundError, match=r"no_such_model\.pt"):
        DynamicYOLO(str(workdir / "no_such_model.pt"))


# ------------------------------------------------------------------------------- failed starts damage no finished run
def _bad_starts(bad_data, classification_pt, tiny_data):
    return {
        "nowhere": {"data": str(bad_data["nowhere"])},
        "empty_val": {"data": str(bad_data["empty_val"])},
        "classification_pretrained": {"data": str(tiny_data), "pretrained": str(classification_pt)},
    }


@pytest.mark.parametrize("bad", ["nowhere", "empty_val", "classification_pretrained"])
def test_failed_start_beside_a_run_leaves_it_untouched(bad, run_a, run_a_files, bad_data, classification_pt, tiny_data):
    kwargs = _bad_starts(bad_data, classification_pt, tiny_data)[bad]
    with pytest.raises((ValueError, FileNotFoundError)):
        DynamicYOLO("dy-yolo11n.yaml").train(project=str(run_a.parent), name=f"B-{bad}", **kwargs, **TRAIN)
    assert snapshot(run_a) == run_a_files
    assert not (run_a.parent / f"B-{bad}").exists(), "a refused start must not leave a run folder behind"


@pytest.mark.parametrize("bad", ["nowhere", "empty_val", "classification_pretrained"])
def test_failed_retrain_into_the_same_run_leaves_it_untouched(
    bad, run_a, run_a_files, bad_data, classification_pt, tiny_data
):
    kwargs = _bad_starts(bad_data, classification_pt, tiny_data)[bad]
    with pytest.raises((ValueError, FileNotFoundError)):
        DynamicYOLO(str(run_a / "weights" / "best.pt")).train(
            project=str(run_a.parent), name="A", exist_ok=True, **kwargs, **TRAIN
        )
    after = snapshot(run_a)
    for ckpt in ("weights/best.pt", "weights/last.pt"):
        assert after[ckpt] == run_a_files[ckpt], f"{ckpt} changed"
    assert after == run_a_files, "args.yaml / results.csv of the finished run were rewritten or deleted"


# -------------------------------------------------------------------------------- routing arguments on predict / val
ROUTING_CASES = [
    ({"threshold": 7}, r"threshold=7 is out of range \[0, 1\]"),  # dydet/cfg/default.yaml's check, as in the CLI
    ({"hard_ratio": -1}, r"hard_ratio=-1 is out of range \[0, 1\]"),
    ({"threshold": 0.5, "hard_ratio": 0.5}, r"either threshold= or hard_ratio="),
    ({"route": "medium"}, r"route='medium' is not one of None, easy, hard"),
    ({"hard_ratio": 0.3}, r"hard_ratio= needs a calibrated model.*stage=2"),
]


@pytest.mark.parametrize("method", ["predict", "val"])
@pytest.mark.parametrize(("kwargs", "match"), ROUTING_CASES, ids=["threshold", "hard_ratio", "both", "route", "uncal"])
def test_bad_routing_arguments(method, kwargs, match, stage1, tiny_data, project):
    assert stage1.model.stage == 1 and not stage1.model.calibration
    if method == "predict":
        source = str(next((tiny_data.parent / "images" / "val").iterdir()))
        call = {"source": source, "imgsz": 64, "device": "cpu", "save": False}
    else:
        call = {"data": str(tiny_data), "imgsz": 64, "batch": 8, "device": "cpu", "plots": False}
    with pytest.raises(ValueError, match=match):
        getattr(stage1, method)(project=str(project), name=f"routing-{method}", **call, **kwargs)
