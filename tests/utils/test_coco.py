import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import cv2
import pytest
import yaml

from dydet.models.yolo.model import DynamicYOLO
from dydet.utils import coco as coco_mod
from dydet.utils.coco import coco_stats, evaluate_routes_json

COCO_KEYS = [f"metrics/coco_{k}({r})" for r in "EH" for k in ("mAP50-95", "mAP50")]
RENAMED = {"000024": "img_a", "000030": "street-7"}  # non-numeric stems: string image ids, mixed with int ones
VAL_ARGS = dict(imgsz=64, batch=8, workers=0, device="cpu", plots=False, save_json=True, conf=0.001)


@pytest.fixture(scope="module")
def generated(tiny_data) -> Path:
    """The tiny synthetic dataset's data.yaml (with annotations/instances_val.json)."""
    return tiny_data


@pytest.fixture(scope="module")
def user_data(generated, tmp_path_factory) -> Path:
    """A plain YOLO dataset (no COCO file, no coco_val key), two val images renamed to non-numeric stems."""
    root = tmp_path_factory.mktemp("user") / "shapes"
    shutil.copytree(generated.parent, root)
    shutil.rmtree(root / "annotations")
    for cache in root.glob("labels/*.cache"):
        cache.unlink()
    for old, new in RENAMED.items():
        (root / "images/val" / f"{old}.jpg").rename(root / "images/val" / f"{new}.jpg")
        (root / "labels/val" / f"{old}.txt").rename(root / "labels/val" / f"{new}.txt")
    cfg = yaml.safe_load(generated.read_text())
    cfg = {k: v for k, v in cfg.items() if not k.startswith("coco_")} | {"path": str(root)}
    (root / "data.yaml").write_text(yaml.safe_dump(cfg))
    return root / "data.yaml"


@pytest.fixture(scope="module")
def best_pt(full_run) -> Path:
    """The calibrated final checkpoint of the shared tiny training run (tests/engine/conftest.py)."""
    return Path(full_run[0].ckpt_path)


def coco_metrics(metrics) -> dict:
    return {**metrics.results_dict, **getattr(metrics, "coco", {})}


def expected_boxes(data_yaml: Path) -> dict:
    """Pixel xywh boxes and COCO category ids per image id, straight from the YOLO label files."""
    root, out = data_yaml.parent, {}
    for im in sorted((root / "images/val").glob("*.jpg")):
        h, w = cv2.imread(str(im)).shape[:2]
        boxes = []
        for line in (root / "labels/val" / f"{im.stem}.txt").read_text().splitlines():
            c, xc, yc, bw, bh = map(float, line.split())
            box = ((xc - bw / 2) * w, (yc - bh / 2) * h, bw * w, bh * h)
            boxes.append((int(c) + 1, tuple(round(v, 2) + 0.0 for v in box)))  # rounded: stable sort order
        out[int(im.stem) if im.stem.isnumeric() else im.stem] = sorted(boxes)
    return out


def boxes_by_image(gt: dict) -> dict:
    out = {img["id"]: [] for img in gt["images"]}
    for a in gt["annotations"]:
        out[a["image_id"]].append((a["category_id"], tuple(round(v, 2) + 0.0 for v in a["bbox"])))
    return {k: sorted(v) for k, v in out.items()}


def assert_same_boxes(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for image_id in a:
        assert len(a[image_id]) == len(b[image_id]), image_id
        for (ca, ba), (cb, bb) in zip(a[image_id], b[image_id]):
            assert ca == cb and ba == pytest.approx(bb, abs=1e-2), image_id


def test_val_uses_the_dataset_coco_file(best_pt, generated, tmp_path):
    metrics = DynamicYOLO(best_pt).val(data=str(generated), project=str(tmp_path), name="v", **VAL_ARGS)
    save_dir = tmp_path / "v"
    for route in ("easy", "hard"):
        preds = json.loads((save_dir / f"predictions_{route}.json").read_text())
        assert preds and {"image_id", "category_id", "bbox", "score"} <= preds[0].keys()
    assert not (save_dir / "annotations_val.json").exists()  # the dataset's own file was used
    values = coco_metrics(metrics)
    assert all(0.0 <= values[k] <= 1.0 for k in COCO_KEYS)


def test_val_converts_yolo_labels(best_pt, user_data, generated, tmp_path):
    metrics = DynamicYOLO(best_pt).val(data=str(user_data), project=str(tmp_path), name="v", **VAL_ARGS)
    save_dir = tmp_path / "v"
    assert (save_dir / "predictions_easy.json").is_file() and (save_dir / "predictions_hard.json").is_file()
    gt = json.loads((save_dir / "annotations_val.json").read_text())
    assert all(0.0 <= coco_metrics(metrics)[k] <= 1.0 for k in COCO_KEYS)
    ids = {img["id"] for img in gt["images"]}
    assert {"img_a", "street-7", 25} <= ids  # the ids pred_to_json writes: int(stem), else the stem
    preds = json.loads((save_dir / "predictions_hard.json").read_text())
    assert {p["image_id"] for p in preds} <= ids
    assert [c["id"] for c in gt["categories"]] == [1, 2, 3, 4, 5, 6]
    converted = boxes_by_image(gt)
    assert_same_boxes(converted, expected_boxes(user_data))
    # and agrees with the generator's own COCO file, renamed images aside
    reference = boxes_by_image(json.loads((generated.parent / "annotations/instances_val.json").read_text()))
    reference = {RENAMED.get(f"{k:06d}", k): v for k, v in reference.items()}
    assert_same_boxes(converted, reference)


def perfect_predictions(gt: dict) -> list[dict]:
    names = {img["id"]: img["file_name"] for img in gt["images"]}
    return [
        {
            "image_id": a["image_id"],
            "file_name": names[a["image_id"]],
            "category_id": a["category_id"],
            "bbox": a["bbox"],
            "score": 0.9,
        }
        for a in gt["annotations"]
    ]


def test_coco_stats_scores_ground_truth_as_perfect(generated):
    gt = json.loads((generated.parent / "annotations/instances_val.json").read_text())
    files = [str(p) for p in sorted((generated.parent / "images/val").glob("*.jpg"))]
    result, table = coco_stats(gt, perfect_predictions(gt), files)
    assert result == {"mAP50-95": pytest.approx(1.0), "mAP50": pytest.approx(1.0)}
    assert "Average Precision" in table
    # predictions on one image only, evaluation restricted to that image: still perfect
    first = gt["images"][0]
    preds = [p for p in perfect_predictions(gt) if p["image_id"] == first["id"]]
    assert coco_stats(gt, preds, [f"/x/{first['file_name']}"])[0]["mAP50-95"] == pytest.approx(1.0)
    # ...but over all images it is not
    assert coco_stats(gt, preds, files)[0]["mAP50-95"] < 0.5
    assert coco_stats(gt, [], files)[0] == {"mAP50-95": 0.0, "mAP50": 0.0}


def test_coco_file_with_its_own_numbering_matches_by_file_name(generated):
    gt = json.loads((generated.parent / "annotations/instances_val.json").read_text())
    preds = perfect_predictions(gt)  # ids as pred_to_json writes them (int(stem))
    new_ids = {img["id"]: 1000 + k for k, img in enumerate(gt["images"])}
    gt["images"] = [{**img, "id": new_ids[img["id"]]} for img in gt["images"]]
    gt["annotations"] = [{**a, "image_id": new_ids[a["image_id"]]} for a in gt["annotations"]]
    files = [str(p) for p in sorted((generated.parent / "images/val").glob("*.jpg"))]
    assert coco_stats(gt, preds, files)[0]["mAP50-95"] == pytest.approx(1.0)


def stub_validator(root: Path, save_dir: Path) -> SimpleNamespace:
    pred = {"image_id": 24, "file_name": "000024.jpg", "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}
    return SimpleNamespace(
        args=SimpleNamespace(save_json=True, split="val"),
        jdicts={"easy": [pred], "hard": [pred]},
        data={"path": root},
        save_dir=save_dir,
        dataloader=SimpleNamespace(dataset=SimpleNamespace(im_files=[str(root / "images/val/000024.jpg")])),
        metrics=SimpleNamespace(),
    )


@pytest.mark.parametrize("content", ["{not json", '{"images": []}'])
def test_corrupt_annotation_file_warns_and_keeps_stats(tmp_path, monkeypatch, content):
    root = tmp_path / "ds"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations/instances_val.json").write_text(content)
    warnings = []
    monkeypatch.setattr(coco_mod.LOGGER, "warning", lambda msg, *a, **k: warnings.append(msg))
    stats = {"metrics/mAP50(E)": 0.5}
    out = evaluate_routes_json(stub_validator(root, tmp_path), dict(stats))
    assert out == stats
    assert len(warnings) == 1 and "instances_val.json" in warnings[0] and "\n" not in warnings[0]
    assert (tmp_path / "predictions_easy.json").is_file() and (tmp_path / "predictions_hard.json").is_file()


def test_nothing_happens_without_save_json(tmp_path):
    validator = stub_validator(tmp_path, tmp_path)
    validator.args.save_json = False
    assert evaluate_routes_json(validator, {"a": 1.0}) == {"a": 1.0}
    assert not list(tmp_path.iterdir())
