"""Offline, deterministic synthetic detection datasets whose images range from easy to hard.

DynamicDet only pays off when images differ in difficulty, so every generated image gets a difficulty ``d`` in
``[0, 1]`` (uniform per image) and all rendering parameters interpolate with it:

- ``d ~ 0``: 1-3 large (a quarter to half the image), high-contrast shapes on a clean, flat background.
- ``d ~ 1``: 10-30 small (5-13 % of the image), low-contrast shapes, some textured with photo patches, on a
  cluttered photo background with distractor strokes, letters and blobs, partial occlusion, objects cut by the
  image border, blur and sensor noise.

Six shape classes (see ``CLASS_NAMES``) in varied colors. Backgrounds and object textures are random crops of the
photos that installed packages ship (ultralytics' ``assets`` and matplotlib's ``sample_data``), located through the
packages' import specs, plus procedural textures (the only textures when no photo is found).

The ``demo`` preset uses its own profile (``_demo_params``): 1-12 larger, higher-contrast objects and a moderate hard
end, so that a small detector learns it in minutes of CPU training; ``tiny`` and ``bench`` use the standard one above.

Layout of a dataset folder (``<root>/<preset>-seed<seed>-<n_train>x<n_val>-<imgsz>px-v<preset version>``)::

    data.yaml                       # path (absolute), train, val, nc, names, difficulty, coco_val
    images/{train,val}/<stem>.jpg
    labels/{train,val}/<stem>.txt   # YOLO: "cls xc yc w h", normalized
    difficulty.csv                  # one row per image, see ``CSV_FIELDS``
    annotations/instances_val.json  # COCO ground truth of the val split
    generator.json                  # manifest, written last

Conventions:
    - Stems are the zero-padded *global* image index, unique across splits: train images are ``0 .. n_train-1`` and
      val images ``n_train .. n_train+n_val-1``. COCO ``image_id == int(stem)``, which is what ultralytics'
      ``DetectionValidator.pred_to_json`` writes for numeric stems.
    - COCO ``category_id == class index + 1``, which is ultralytics' ``class_map`` for any dataset that is not COCO.
    - COCO ``bbox`` is ``[x, y, w, h]`` in pixels (integer pixel edges) and ``area = w * h``, the convention of the
      ground truth ultralytics builds in memory for custom datasets.

Label rule: a box is the tight box of the object's *visible* pixels (alpha >= 0.5, not covered by a later object or
occluder, inside the image). An object is labelled only if at least ``MIN_VISIBLE`` (40 %) of its full shape area is
visible and its visible box is at least ``MIN_BOX_PX`` (3) pixels wide and high; other objects stay in the image
unlabelled.

Determinism: every image is rendered from its own generator seeded by ``(seed, split, index)``, so a dataset is a pure
function of seed, sizes, ``GENERATOR_VERSION`` and the texture photos found (and of the OpenCV/NumPy versions).
Bump a preset's ``version`` (``GENERATOR_VERSION`` for the standard profile) whenever its output changes: it is part of
the cache folder name.
"""

from dydet.data.synthetic.api import default_datasets_dir, load_difficulty, make_dataset
from dydet.data.synthetic.presets import (
    CLASS_NAMES,
    CSV_FIELDS,
    GENERATOR_VERSION,
    MIN_BOX_PX,
    MIN_VISIBLE,
    PRESETS,
    Preset,
    dataset_dirname,
)

__all__ = (
    "CLASS_NAMES",
    "CSV_FIELDS",
    "GENERATOR_VERSION",
    "MIN_BOX_PX",
    "MIN_VISIBLE",
    "PRESETS",
    "Preset",
    "dataset_dirname",
    "default_datasets_dir",
    "load_difficulty",
    "make_dataset",
)
