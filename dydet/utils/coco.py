"""Official COCO scoring (pycocotools) of both routes' predictions, for any YOLO-format dataset.

`DynamicValidator.eval_json` calls `evaluate_routes_json` when `save_json=True`. Ground truth is the dataset's own
COCO file (`<root>/annotations/instances_<split>.json`, or the file named by the data YAML's `coco_<split>` key) when
there is one, else a conversion of the split's YOLO labels, saved as `save_dir/annotations_<split>.json`.

Ultralytics' own route (`DetectionValidator.coco_evaluate`) installs `faster-coco-eval` at run time and only scores
COCO/LVIS or in-memory ground truth; this module needs nothing beyond pycocotools and never installs anything.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from ultralytics.utils import LOGGER

from dydet.routing import ROUTES
from dydet.utils.errors import DataError

__all__ = ("coco_stats", "evaluate_routes_json", "find_annotations", "yolo_to_coco")


def _image_id(file: str | Path) -> int | str:
    """Return the COCO image id that `DetectionValidator.pred_to_json` writes for an image file."""
    stem = Path(file).stem
    return int(stem) if stem.isnumeric() else stem


def _image_hw(file: str | Path) -> tuple[int, int]:
    """Return an image's (height, width) after EXIF rotation, as Ultralytics sees it, reading only its header."""
    from PIL import Image
    from ultralytics.data.utils import exif_size

    with Image.open(file) as im:
        w, h = exif_size(im)
    return h, w


def yolo_to_coco(labels: list[dict[str, Any]], names: dict[int, str], class_map: list[int]) -> dict[str, Any]:
    """Convert YOLO dataset labels into a COCO ground-truth dict with the ids `pred_to_json` uses.

    Args:
        labels (list[dict]): Ultralytics `YOLODataset.labels` entries: `im_file`, `cls` (n, 1), `bboxes` (n, 4)
            normalized xywh, and optionally `shape` (h, w) (rectangular datasets drop it; the image header is read
            then).
        names (dict[int, str]): Class names by class index.
        class_map (list[int]): COCO category id of each class index (`validator.class_map`).

    Returns:
        (dict): COCO dict with `images` (id = int(stem) or stem), `annotations` (pixel `[x, y, w, h]`, `area = w * h`)
            and `categories`.
    """
    images, annotations = [], []
    for label in labels:
        h, w = (int(v) for v in label["shape"]) if "shape" in label else _image_hw(label["im_file"])
        image_id = _image_id(label["im_file"])
        images.append({"id": image_id, "file_name": Path(label["im_file"]).name, "width": w, "height": h})
        for c, (xc, yc, bw, bh) in zip(label["cls"].reshape(-1).tolist(), label["bboxes"].reshape(-1, 4).tolist()):
            box = [(xc - bw / 2) * w, (yc - bh / 2) * h, bw * w, bh * h]
            box = [round(v, 3) for v in box]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": class_map[int(c)],
                    "bbox": box,
                    "area": round(box[2] * box[3], 3),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": class_map[i], "name": str(n), "supercategory": ""} for i, n in sorted(names.items())]
    return {
        "info": {"description": "converted from YOLO labels by dydet"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def find_annotations(data: dict[str, Any], split: str) -> Path | None:
    """Return the dataset's own COCO ground-truth file for a split, or None when it has none.

    Looks at the data YAML's `coco_<split>` key (relative to the dataset root) first, then at
    `<root>/annotations/instances_<split>.json`.
    """
    root = Path(data.get("path") or ".")
    for name in (data.get(f"coco_{split}"), f"annotations/instances_{split}.json"):
        if name and (root / name).is_file():
            return root / name
    return None


def _dense_ids(gt: dict[str, Any], files: list[str]) -> tuple[dict[Any, int], list[int], int]:
    """Map ground-truth image ids to 1..N and find the evaluated images among them.

    Image files are matched to ground-truth images by file name, else by the id `pred_to_json` gives them, so that a
    COCO file with its own numbering still works and mixed int/str ids never reach pycocotools' sorting.

    Returns:
        (tuple): `{gt id: dense id}`, dense ids of the evaluated images, and how many files were not found.
    """
    dense = {img["id"]: k for k, img in enumerate(gt["images"], 1)}
    by_name = {Path(img["file_name"]).name: img["id"] for img in gt["images"] if "file_name" in img}
    evaluated, missing = [], 0
    for f in files:
        gt_id = by_name.get(Path(f).name, _image_id(f))
        if gt_id in dense:
            evaluated.append(dense[gt_id])
        else:
            missing += 1
    return dense, evaluated, missing


def coco_stats(gt: dict[str, Any], preds: list[dict[str, Any]], files: list[str]) -> tuple[dict[str, float], str]:
    """Score COCO-format predictions against ground truth with pycocotools (bbox), on the given images only.

    Args:
        gt (dict): COCO ground truth (not modified).
        preds (list[dict]): `pred_to_json` records: `image_id`, `file_name`, `category_id`, `bbox`, `score`.
        files (list[str]): The evaluated image files; `params.imgIds` is restricted to them.

    Returns:
        (tuple): `{"mAP50-95", "mAP50"}` and pycocotools' printed summary table (empty when there are no predictions).

    Raises:
        ValueError: If none of `files` is in the ground truth.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dense, img_ids, _ = _dense_ids(gt, files)
    if not img_ids:
        raise DataError("none of the evaluated images is in the annotations")
    annotations = [
        {
            "id": k,
            "iscrowd": 0,
            "area": a["bbox"][2] * a["bbox"][3],
            **a,
            "image_id": dense[a["image_id"]],
        }
        for k, a in enumerate(gt["annotations"], 1)
        if a["image_id"] in dense
    ]
    images = [{**img, "id": dense[img["id"]]} for img in gt["images"]]
    by_name = {Path(img["file_name"]).name: img["id"] for img in gt["images"] if "file_name" in img}
    results = []
    for p in preds:
        gt_id = by_name.get(Path(p.get("file_name", "")).name, p["image_id"])
        if gt_id in dense:  # fresh dicts: loadRes adds keys to the records it gets
            results.append({k: p[k] for k in ("category_id", "bbox", "score")} | {"image_id": dense[gt_id]})
    if not results:
        return {"mAP50-95": 0.0, "mAP50": 0.0}, ""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # pycocotools prints its progress and table
        anno = COCO()
        anno.dataset = {**gt, "images": images, "annotations": annotations, "categories": gt["categories"]}
        anno.createIndex()
        out.seek(0), out.truncate()
        ev = COCOeval(anno, anno.loadRes(results), iouType="bbox")
        ev.params.imgIds = img_ids
        ev.evaluate()
        ev.accumulate()
        out.seek(0), out.truncate()
        ev.summarize()
    # stats[0] = AP@[.5:.95], stats[1] = AP@.5; -1 means no ground truth at all
    return {"mAP50-95": max(float(ev.stats[0]), 0.0), "mAP50": max(float(ev.stats[1]), 0.0)}, out.getvalue()


def _ground_truth(validator, file: Path | None) -> dict[str, Any]:
    """Load the dataset's COCO file, or (`file` None) convert the split's YOLO labels and save them in `save_dir`."""
    if file is not None:
        with open(file, encoding="utf-8") as f:
            return json.load(f)
    split = validator.args.split or "val"
    gt = yolo_to_coco(validator.dataloader.dataset.labels, validator.names, validator.class_map)
    file = Path(validator.save_dir) / f"annotations_{split}.json"
    with open(file, "w", encoding="utf-8") as f:
        json.dump(gt, f)
    LOGGER.info(f"Converted the {split} split's YOLO labels to COCO ground truth: {file}")
    return gt


def evaluate_routes_json(validator, stats: dict[str, Any]) -> dict[str, Any]:
    """Save each route's COCO-format predictions and add pycocotools' mAP50-95/mAP50 per route to `stats`.

    Writes `save_dir/predictions_easy.json` and `predictions_hard.json` (the validator's `jdicts`), scores them against
    the split's COCO ground truth (see the module docstring), logs pycocotools' AP table per route and a table of
    COCO vs Ultralytics mAP per route, and adds `metrics/coco_mAP50-95(E)`, `metrics/coco_mAP50(E)`, `(H)` alike.
    The same keys are kept in `validator.metrics.coco`. A missing or unreadable ground truth logs one warning and
    leaves `stats` unchanged.

    Args:
        validator (DynamicValidator): A validator after its run (`jdicts`, `dataloader`, `data`, `class_map` set).
        stats (dict): The validator's statistics.

    Returns:
        (dict): `stats` plus the COCO keys.
    """
    jdicts = getattr(validator, "jdicts", {})
    if not validator.args.save_json or not any(jdicts.get(r) for r in ROUTES):
        return stats
    save_dir = Path(validator.save_dir)
    for route in ROUTES:
        with open(save_dir / f"predictions_{route}.json", "w", encoding="utf-8") as f:
            json.dump(jdicts.get(route, []), f)
    split = validator.args.split or "val"
    file = find_annotations(validator.data, split)
    try:
        gt = _ground_truth(validator, file)
        file = file or save_dir / f"annotations_{split}.json"
        files = list(validator.dataloader.dataset.im_files)
        missing = _dense_ids(gt, files)[2]
        if 0 < missing < len(files):  # none found: coco_stats raises
            LOGGER.warning(f"{missing} of {len(files)} evaluated images are not in {file}; they are left out")
        coco, tables = {}, {}
        for route in ROUTES:
            result, tables[route] = coco_stats(gt, jdicts.get(route, []), files)
            tag = route[0].upper()
            coco[f"metrics/coco_mAP50-95({tag})"] = result["mAP50-95"]
            coco[f"metrics/coco_mAP50({tag})"] = result["mAP50"]
    except Exception as e:
        where = file or save_dir / f"annotations_{split}.json"
        reason = (str(e).splitlines() or [""])[0]
        LOGGER.warning(f"pycocotools evaluation skipped ({where}): {type(e).__name__}: {reason}")
        return stats
    for route in ROUTES:
        LOGGER.info(f"\npycocotools bbox evaluation, {route} route ({file}):")
        LOGGER.info(tables[route].rstrip() or " no predictions: AP = 0")
    LOGGER.info(_comparison_table(stats, coco))
    validator.metrics.coco = coco
    return {**stats, **coco}


def _comparison_table(stats: dict[str, Any], coco: dict[str, float]) -> str:
    """Return a small table of Ultralytics' and pycocotools' mAP per route."""
    head = ("%22s" + "%15s" * 4) % ("Route", "mAP50", "mAP50-95", "COCO mAP50", "COCO mAP50-95")
    rows = [head]
    for route in ROUTES:
        t = route[0].upper()
        values = (
            stats.get(f"metrics/mAP50({t})", float("nan")),
            stats.get(f"metrics/mAP50-95({t})", float("nan")),
            coco[f"metrics/coco_mAP50({t})"],
            coco[f"metrics/coco_mAP50-95({t})"],
        )
        rows.append(("%22s" + "%15.3g" * 4) % (f"{route} route", *values))
    return "\n" + "\n".join(rows)
