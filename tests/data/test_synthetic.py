"""Tests of the synthetic dataset generator (CPU, each a fraction of a second to a few seconds)."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")

from dydet.data.synthetic import (  # noqa: E402  # noqa: E402
    CLASS_NAMES,
    PRESETS,
    api,
    load_difficulty,
    make_dataset,
    painting,
    presets,
    profiles,
    writers,
)
from dydet.data.synthetic import __main__ as synthetic_cli  # noqa: E402
from dydet.data.synthetic import textures as texture_module  # noqa: E402


def _tiny(root: Path, **kwargs) -> Path:
    return make_dataset("tiny", root=root, verbose=False, **kwargs)


def _read_labels(label_file: Path) -> np.ndarray:
    rows = [line.split() for line in label_file.read_text().splitlines()]
    assert all(len(r) == 5 for r in rows), label_file
    return np.array(rows, dtype=np.float64).reshape(-1, 5)


def _count_renders(monkeypatch: pytest.MonkeyPatch, fail_after: int | None = None) -> list[int]:
    """Wrap the per-image renderer to count calls (and optionally fail mid-way)."""
    calls = [0]
    render = painting._render_image

    def counting(*args, **kwargs):
        if fail_after is not None and calls[0] >= fail_after:
            raise RuntimeError("simulated interruption")
        calls[0] += 1
        return render(*args, **kwargs)

    monkeypatch.setattr(writers, "_render_image", counting)  # where the writer looks it up
    return calls


@pytest.fixture(scope="module")
def tiny_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def graded_csv(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, str]]:
    yaml_file = _tiny(tmp_path_factory.mktemp("graded"), n_train=150, n_val=10)
    with open(yaml_file.parent / "difficulty.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_presets():
    assert set(PRESETS) == {"tiny", "demo", "bench"}
    assert PRESETS["tiny"].imgsz < PRESETS["demo"].imgsz < PRESETS["bench"].imgsz
    assert PRESETS["bench"].n_train >= 1000


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "huge"}, "valid presets: tiny, demo, bench"),
        ({"n_train": 0}, "n_train"),
        ({"n_val": -3}, "n_val"),
        ({"imgsz": 0}, "imgsz"),
        ({"seed": -1}, "seed"),
        ({"n_train": 2.5}, "n_train"),
    ],
)
def test_invalid_arguments(tmp_path: Path, kwargs: dict, match: str):
    with pytest.raises(ValueError, match=match):
        make_dataset(**{"name": "tiny", "root": tmp_path, "verbose": False, **kwargs})
    assert not any(tmp_path.iterdir())


def test_layout(tiny_yaml: Path):
    import yaml

    data = yaml.safe_load(tiny_yaml.read_text())
    root = tiny_yaml.parent
    assert tiny_yaml.is_absolute() and data["path"] == str(root)
    assert (data["train"], data["val"]) == ("images/train", "images/val")
    assert data["names"] == dict(enumerate(CLASS_NAMES)) and data["nc"] == len(CLASS_NAMES)
    assert "tiny" in root.name and "seed0" in root.name and f"v{presets.GENERATOR_VERSION}" in root.name
    for split, n in (("train", PRESETS["tiny"].n_train), ("val", PRESETS["tiny"].n_val)):
        images = sorted(p.stem for p in (root / "images" / split).iterdir())
        labels = sorted(p.stem for p in (root / "labels" / split).iterdir())
        assert len(images) == n and images == labels
    assert (root / "difficulty.csv").is_file() and (root / "annotations" / "instances_val.json").is_file()


def test_labels_are_valid_yolo(tiny_yaml: Path):
    import cv2

    root, n_boxes = tiny_yaml.parent, 0
    for label_file in sorted((root / "labels").rglob("*.txt")):
        labels = _read_labels(label_file)
        image = cv2.imread(str(root / "images" / label_file.parent.name / f"{label_file.stem}.jpg"))
        side = image.shape[0]
        cls, xc, yc, w, h = labels.T
        assert np.all(cls == cls.round()) and np.all((cls >= 0) & (cls < len(CLASS_NAMES)))
        assert np.all((labels[:, 1:] > 0) & (labels[:, 1:] <= 1))
        assert np.all(xc - w / 2 >= -1e-6) and np.all(xc + w / 2 <= 1 + 1e-6)
        assert np.all(yc - h / 2 >= -1e-6) and np.all(yc + h / 2 <= 1 + 1e-6)
        assert np.all(w * side >= presets.MIN_BOX_PX - 1e-3) and np.all(h * side >= presets.MIN_BOX_PX - 1e-3)
        n_boxes += len(labels)
    assert n_boxes > 50


def test_boxes_are_tight():
    """Render an easy image without noise: each box must touch its shape's pixels on all four sides."""
    textures = texture_module._texture_pool()
    rng = np.random.default_rng(3)
    p = profiles._params(rng, 0.0, 128)
    canvas = np.zeros((128, 128, 3), np.float32)
    idmap = np.zeros((128, 128), np.uint8)
    objects = painting._draw_objects(rng, canvas, idmap, p, textures)
    boxes = painting._visible_boxes(idmap, objects)
    assert len(boxes) == len(objects) >= 1
    for oid, (_, x0, y0, x1, y1) in enumerate(boxes, start=1):
        ys, xs = np.nonzero(idmap == oid)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)


def test_occluded_objects_follow_the_label_rule():
    """A shape covered for more than 60 % of its area is dropped; one covered less keeps a box of its visible part."""
    idmap = np.zeros((64, 64), np.uint8)
    rng = np.random.default_rng(0)
    mask, x0, y0 = painting._shape_mask(CLASS_NAMES.index("rectangle"), 32.0, 32.0, 30.0, rng)
    canvas = np.zeros((64, 64, 3), np.float32)
    painting._paint(canvas, idmap, mask, x0, y0, np.ones(3, np.float32), 1)
    obj = presets._Object(1, x0, y0, *mask.shape, int(np.count_nonzero(mask >= 128)))
    ys, xs = np.nonzero(idmap == 1)
    half_x = int(np.median(xs))
    partly = idmap.copy()
    partly[:, half_x:][partly[:, half_x:] == 1] = presets._OCCLUDER_ID  # about half hidden
    (box,) = painting._visible_boxes(partly, [obj])
    assert box[3] == half_x and box[1] == xs.min()
    mostly = idmap.copy()
    mostly[:, xs.min() + (xs.max() - xs.min()) // 4 :] = presets._OCCLUDER_ID  # about 75 % hidden
    assert len(painting._visible_boxes(mostly, [obj])) == 0


def test_deterministic(tmp_path: Path):
    a, b, c = _tiny(tmp_path / "a"), _tiny(tmp_path / "b"), _tiny(tmp_path / "c", seed=1)
    suffixes = {".txt", ".jpg", ".csv", ".json"}  # all but data.yaml, whose absolute path differs
    files = sorted(p.relative_to(a.parent) for p in a.parent.rglob("*") if p.suffix in suffixes)
    assert len(files) > 2 * PRESETS["tiny"].n_train
    for rel in files:
        assert (a.parent / rel).read_bytes() == (b.parent / rel).read_bytes(), rel
    labels_a = [(a.parent / "labels" / "train" / f).read_bytes() for f in sorted(os.listdir(a.parent / "labels/train"))]
    labels_c = [(c.parent / "labels" / "train" / f).read_bytes() for f in sorted(os.listdir(c.parent / "labels/train"))]
    assert labels_a != labels_c
    image = a.parent / "images" / "train" / "000000.jpg"
    assert image.read_bytes() != (c.parent / "images" / "train" / "000000.jpg").read_bytes()


def test_difficulty_spans_and_drives_content(graded_csv: list[dict[str, str]]):
    d = np.array([float(r["difficulty"]) for r in graded_csv])
    n = np.array([int(r["n_objects"]) for r in graded_csv])
    size = np.array([float(r["mean_box_px"]) for r in graded_csv])
    assert d.min() < 0.1 and d.max() > 0.9 and np.all((d >= 0) & (d <= 1))
    assert np.corrcoef(d, n)[0, 1] > 0.7
    assert np.corrcoef(d, size)[0, 1] < -0.7
    easy, hard = d < 0.2, d > 0.8
    assert n[d < 0.1].max() <= 6 and n[d < 0.1].mean() <= 4 and n[hard].mean() >= 10
    assert size[hard].mean() < 0.4 * size[easy].mean()
    noise = np.array([float(r["noise_sigma"]) for r in graded_csv])
    assert noise[easy].max() < 2 and noise[hard].min() > 5


def test_load_difficulty(tiny_yaml: Path):
    root = tiny_yaml.parent
    all_d = load_difficulty(tiny_yaml)
    assert len(all_d) == PRESETS["tiny"].n_train + PRESETS["tiny"].n_val
    assert load_difficulty(root) == all_d == load_difficulty(root / "difficulty.csv")
    val = load_difficulty(tiny_yaml, split="val")
    assert set(val) == {p.stem for p in (root / "images" / "val").iterdir()}
    assert all(0 <= v <= 1 for v in val.values())
    with pytest.raises(ValueError, match="split"):
        load_difficulty(tiny_yaml, split="test")


def test_coco_annotations_match_yolo_labels(tiny_yaml: Path):
    from pycocotools.coco import COCO

    root = tiny_yaml.parent
    coco = COCO(str(root / "annotations" / "instances_val.json"))
    assert sorted(coco.getCatIds()) == list(range(1, len(CLASS_NAMES) + 1))  # ultralytics class_map: cls + 1
    assert [coco.cats[i + 1]["name"] for i in range(len(CLASS_NAMES))] == list(CLASS_NAMES)
    val_files = sorted((root / "images" / "val").iterdir())
    assert sorted(coco.getImgIds()) == [int(p.stem) for p in val_files]  # ultralytics pred_to_json: int(stem)
    for image_file in val_files:
        info = coco.imgs[int(image_file.stem)]
        assert info["file_name"] == image_file.name
        side = info["width"]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[info["id"]]))
        labels = _read_labels(root / "labels" / "val" / f"{image_file.stem}.txt")
        assert len(anns) == len(labels)
        for ann, (c, xc, yc, w, h) in zip(anns, labels):
            assert ann["category_id"] == int(c) + 1 and ann["iscrowd"] == 0
            expected = [(xc - w / 2) * side, (yc - h / 2) * side, w * side, h * side]
            assert np.allclose(ann["bbox"], expected, atol=1e-3)
            assert ann["area"] == pytest.approx(ann["bbox"][2] * ann["bbox"][3])


def test_ultralytics_loads_dataset(tiny_yaml: Path):
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(tiny_yaml))
    assert data["nc"] == len(CLASS_NAMES) and Path(data["val"]).is_dir()
    dataset = YOLODataset(img_path=data["train"], data=data, task="detect", imgsz=96, augment=False)
    n_labels = sum(len(_read_labels(p)) for p in (tiny_yaml.parent / "labels" / "train").iterdir())
    assert len(dataset) == PRESETS["tiny"].n_train
    assert sum(len(lb["cls"]) for lb in dataset.labels) == n_labels


def test_cache_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    calls = _count_renders(monkeypatch)
    first = _tiny(tmp_path)
    n_images = PRESETS["tiny"].n_train + PRESETS["tiny"].n_val
    assert calls[0] == n_images
    stamp = (first.parent / "generator.json").stat().st_mtime_ns
    assert _tiny(tmp_path) == first and calls[0] == n_images
    assert (first.parent / "generator.json").stat().st_mtime_ns == stamp
    assert _tiny(tmp_path, n_val=5) != first and calls[0] == n_images + PRESETS["tiny"].n_train + 5
    assert _tiny(tmp_path, force=True) == first and calls[0] == 2 * n_images + PRESETS["tiny"].n_train + 5
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_default_root_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("DYDET_DATASETS_DIR", raising=False)
    monkeypatch.setenv("DYDET_HOME", str(tmp_path / "home"))
    assert api.default_datasets_dir() == tmp_path / "home" / "datasets"
    monkeypatch.setenv("DYDET_DATASETS_DIR", str(tmp_path / "cache"))
    assert make_dataset("tiny", n_train=2, n_val=2, verbose=False).parent.parent == tmp_path / "cache"


def test_interrupted_generation_leaves_nothing_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _count_renders(monkeypatch, fail_after=10)
    with pytest.raises(RuntimeError, match="simulated interruption"):
        _tiny(tmp_path)
    assert list(tmp_path.rglob("data.yaml")) == [] and list(tmp_path.rglob("generator.json")) == []
    assert list(tmp_path.iterdir()) == []  # the temporary folder is cleaned up too
    monkeypatch.undo()
    calls = _count_renders(monkeypatch)
    yaml_file = _tiny(tmp_path)
    assert calls[0] == PRESETS["tiny"].n_train + PRESETS["tiny"].n_val
    assert len(list((yaml_file.parent / "labels" / "val").iterdir())) == PRESETS["tiny"].n_val


def test_killed_generation_is_cleaned_up_and_regenerated(tmp_path: Path):
    """A run killed hard leaves its temporary folder; the next run ignores it and removes it."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    name = presets.dataset_dirname("tiny", 0, 4, 2, 96)
    stale = tmp_path / f".{name}.tmp-{dead.pid}-deadbeef"
    (stale / "labels" / "train").mkdir(parents=True)
    partial = tmp_path / name  # a half-copied folder without the manifest does not count as complete either
    (partial / "images" / "train").mkdir(parents=True)
    yaml_file = _tiny(tmp_path, n_train=4, n_val=2)
    assert not stale.exists() and yaml_file.parent == partial
    assert len(list((partial / "images" / "train").iterdir())) == 4


def test_moved_dataset_gets_its_path_rewritten(tmp_path: Path):
    import yaml

    first = _tiny(tmp_path / "a", n_train=3, n_val=2)
    (tmp_path / "b").mkdir()
    first.parent.rename(tmp_path / "b" / first.parent.name)
    moved = _tiny(tmp_path / "b", n_train=3, n_val=2)
    assert yaml.safe_load(moved.read_text())["path"] == str(moved.parent)
    assert load_difficulty(moved, split="val").keys() == {"000003", "000004"}


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    synthetic_cli._main(["--name", "tiny", "--root", str(tmp_path), "--n-train", "3", "--n-val", "2", "--quiet"])
    out = capsys.readouterr().out.strip()
    assert Path(out).is_file() and Path(out).name == "data.yaml"
    with pytest.raises(SystemExit):
        synthetic_cli._main(["--name", "nope", "--root", str(tmp_path)])
    assert "valid presets" in capsys.readouterr().err
    assert json.loads((Path(out).parent / "generator.json").read_text())["n_train"] == 3


# sha256 over the image and label files (relative path + bytes, sorted) of the standard-profile presets as generated
# before the demo preset got its own profile (generator v1). Pixels depend on the OpenCV/NumPy versions and on the
# texture photos the installed ultralytics/matplotlib ship, so the check runs only where it was recorded.
STANDARD_PROFILE_DIGESTS = {
    ("bench", 4, 2, None): "022151f2885f1f004f3f21fed9559ea7bca603d162774674efa9fb05d9864396",
    ("bench", 4, 2, 160): "df4078da6bef868e6a8b7f41fbe43401681be0a85fe252105ee55c69daa97026",
    ("tiny", None, None, None): "4c54a0906b62fb6a1b3f8a2e7feadbf11f682b3ba412e680af011c5e3c0ea60f",
}
RECORDED_WITH = {"cv2": "5.0.0", "numpy": "2.4.6", "ultralytics": "8.4.190", "matplotlib": "3.11.2"}


def _files_digest(yaml_file: Path) -> str:
    import hashlib

    root, h = yaml_file.parent, hashlib.sha256()
    files = sorted([*(root / "images").rglob("*"), *(root / "labels").rglob("*.txt")])
    for f in (f for f in files if f.is_file()):
        h.update(f.relative_to(root).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize(("name", "n_train", "n_val", "imgsz"), list(STANDARD_PROFILE_DIGESTS))
def test_standard_presets_are_byte_identical_to_v1(tmp_path: Path, name: str, n_train, n_val, imgsz):
    import importlib

    versions = {m: importlib.import_module(m).__version__ for m in RECORDED_WITH}
    if versions != RECORDED_WITH:
        pytest.skip(f"digests recorded with {RECORDED_WITH}, running {versions}")
    assert PRESETS[name].profile == "standard" and PRESETS[name].version == "1"
    yaml_file = make_dataset(name, root=tmp_path, n_train=n_train, n_val=n_val, imgsz=imgsz, verbose=False)
    assert yaml_file.parent.name.endswith("-v1")
    assert _files_digest(yaml_file) == STANDARD_PROFILE_DIGESTS[(name, n_train, n_val, imgsz)]


def test_demo_profile_is_learnable_and_still_graded(tmp_path: Path):
    """The demo preset: few large clean objects when easy, many smaller ones when hard, fewer than standard."""
    assert PRESETS["demo"].profile == "demo" and PRESETS["demo"].version != presets.GENERATOR_VERSION
    rows = {}
    for name in ("demo", "bench"):
        yaml_file = make_dataset(name, root=tmp_path, n_train=60, n_val=2, imgsz=128, verbose=False)
        assert yaml_file.parent.name.endswith(f"-v{PRESETS[name].version}")
        with open(yaml_file.parent / "difficulty.csv", newline="") as f:
            rows[name] = list(csv.DictReader(f))
    d = np.array([float(r["difficulty"]) for r in rows["demo"]])
    n = {k: np.array([int(r["n_objects"]) for r in v]) for k, v in rows.items()}
    size = {k: np.array([float(r["mean_box_px"]) for r in v]) for k, v in rows.items()}
    noise = np.array([float(r["noise_sigma"]) for r in rows["demo"]])
    hard, easy = d > 0.7, d < 0.3
    assert n["demo"].max() <= 16 and n["demo"].mean() < 0.75 * n["bench"].mean()
    assert n["demo"][easy].max() <= 4 and n["demo"][hard].mean() > 2 * n["demo"][easy].mean()
    assert size["demo"][easy].mean() > 1.8 * size["demo"][hard].mean() and size["demo"].min() >= 8
    assert np.corrcoef(d, n["demo"])[0, 1] > 0.5 and np.corrcoef(d, size["demo"])[0, 1] < -0.5
    assert noise[easy].max() < 2 and noise[hard].min() > 2
