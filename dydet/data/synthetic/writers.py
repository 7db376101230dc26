"""Writing a dataset: images, YOLO labels, the COCO ground truth, difficulty.csv, data.yaml and the manifest."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from dydet.data.synthetic.painting import _render_image
from dydet.data.synthetic.presets import (
    _JPEG_QUALITY,
    _MANIFEST,
    _SPLITS,
    _YAML_NAME,
    CLASS_NAMES,
    CSV_FIELDS,
    PRESETS,
    Preset,
    dataset_dirname,
)
from dydet.data.synthetic.textures import _texture_pool


def _yolo_lines(boxes: np.ndarray, side: int) -> str:
    lines = []
    for c, x0, y0, x1, y1 in boxes.tolist():
        xc, yc, w, h = (x0 + x1) / 2 / side, (y0 + y1) / 2 / side, (x1 - x0) / side, (y1 - y0) / side
        lines.append(f"{c} {xc:.6f} {yc:.6f} {w:.6f} {h:.6f}\n")
    return "".join(lines)


def _coco_annotations(image_id: int, boxes: np.ndarray, first_id: int) -> list[dict[str, Any]]:
    anns = []
    for k, (c, x0, y0, x1, y1) in enumerate(boxes.tolist()):
        w, h = x1 - x0, y1 - y0
        bbox = [x0, y0, w, h]
        anns.append(
            {"id": first_id + k, "image_id": image_id, "category_id": c + 1, "bbox": bbox, "area": w * h, "iscrowd": 0}
        )
    return anns


def _progress(n: int, desc: str, verbose: bool) -> Iterable[int]:
    """``range(n)``, wrapped in ultralytics' progress bar when verbose."""
    if verbose:
        try:
            from ultralytics.utils import TQDM
        except ImportError:  # a progress bar is a nicety; generation never depends on it
            return range(n)
        return TQDM(range(n), total=n, desc=desc)
    return range(n)


def _log(msg: str, verbose: bool) -> None:
    if not verbose:
        return
    try:
        from ultralytics.utils import LOGGER

        LOGGER.info(msg)
    except ImportError:
        print(msg)


@dataclass(frozen=True)
class _Spec:
    name: str
    seed: int
    n_train: int
    n_val: int
    imgsz: int

    @property
    def dirname(self) -> str:
        return dataset_dirname(self.name, self.seed, self.n_train, self.n_val, self.imgsz)

    @property
    def preset(self) -> Preset:
        return PRESETS[self.name]

    def stem(self, index: int) -> str:
        return f"{index:0{max(6, len(str(self.n_train + self.n_val - 1)))}d}"


def _write_one(spec: _Spec, tmp: Path, split: int, index: int, textures: tuple[np.ndarray, ...]) -> dict[str, Any]:
    """Render image ``index`` of split number ``split``, write its image and label file, return its CSV row."""
    rng = np.random.default_rng((spec.seed, split, index))
    d = float(rng.random())
    image, boxes, stats = _render_image(rng, d, spec.imgsz, textures, spec.preset.profile)
    image_id = index + (spec.n_train if split else 0)
    name, stem = _SPLITS[split], spec.stem(image_id)
    file = tmp / "images" / name / f"{stem}.jpg"
    if not cv2.imwrite(str(file), image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY]):
        raise OSError(f"could not write {file}")
    (tmp / "labels" / name / f"{stem}.txt").write_text(_yolo_lines(boxes, spec.imgsz))
    return {"split": name, "file": file.name, "image_id": image_id, "difficulty": round(d, 6), **stats, "_boxes": boxes}


def _coco_dataset(spec: _Spec, val_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """COCO ground truth of the val split (conventions in the module docstring)."""
    images, annotations = [], []
    for row in val_rows:
        images.append({"id": row["image_id"], "file_name": row["file"], "width": spec.imgsz, "height": spec.imgsz})
        annotations += _coco_annotations(row["image_id"], row["_boxes"], len(annotations) + 1)
    return {
        "info": {"description": f"dydet synthetic '{spec.name}' seed {spec.seed} v{spec.preset.version}"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CLASS_NAMES)],
    }


def _write_images(spec: _Spec, tmp: Path, verbose: bool) -> list[dict[str, Any]]:
    """Render and write every image and label file; return one row per image (with its boxes under ``_boxes``)."""
    textures = _texture_pool()
    rows = []
    for split, (name, n) in enumerate(zip(_SPLITS, (spec.n_train, spec.n_val))):
        (tmp / "images" / name).mkdir(parents=True)
        (tmp / "labels" / name).mkdir(parents=True)
        rows += [
            _write_one(spec, tmp, split, i, textures) for i in _progress(n, f"synthetic {spec.name} {name}", verbose)
        ]
    return rows


def _write_metadata(spec: _Spec, tmp: Path, final: Path, rows: list[dict[str, Any]]) -> None:
    """Write the CSV, COCO json, data YAML and, last, the manifest that marks the folder complete."""
    with open(tmp / "difficulty.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    (tmp / "annotations").mkdir()
    coco = _coco_dataset(spec, [r for r in rows if r["split"] == "val"])
    (tmp / "annotations" / "instances_val.json").write_text(json.dumps(coco))
    _write_yaml(tmp / _YAML_NAME, spec, final)
    manifest = {"generator_version": spec.preset.version, **spec.__dict__, "classes": list(CLASS_NAMES)}
    (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=2))


def _write_yaml(file: Path, spec: _Spec, dataset_dir: Path) -> None:
    data = {
        "path": str(dataset_dir),
        "train": "images/train",
        "val": "images/val",
        "nc": len(CLASS_NAMES),
        "names": dict(enumerate(CLASS_NAMES)),
        "difficulty": "difficulty.csv",
        "coco_val": "annotations/instances_val.json",
    }
    header = (
        f"# dydet synthetic dataset '{spec.name}' (seed {spec.seed}, {spec.n_train} train / {spec.n_val} val, "
        f"{spec.imgsz} px, generator v{spec.preset.version}). Generated by dydet.data.synthetic; do not edit.\n"
    )
    file.write_text(header + yaml.safe_dump(data, sort_keys=False))
