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

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import os
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from dydet.utils.errors import ArgumentError
from dydet.utils.offline import dydet_home

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

GENERATOR_VERSION = "1"
CLASS_NAMES = ("circle", "rectangle", "triangle", "cross", "ring", "star")
MIN_VISIBLE = 0.4
MIN_BOX_PX = 3
CSV_FIELDS = (
    "split",
    "file",
    "image_id",
    "difficulty",
    "n_objects",
    "n_unlabelled",
    "mean_box_px",
    "min_box_px",
    "background_texture",
    "noise_sigma",
    "blur_sigma",
)

_SPLITS = ("train", "val")
_JPEG_QUALITY = 92
_MANIFEST = "generator.json"
_YAML_NAME = "data.yaml"
_OCCLUDER_ID = 255
_SHIFT = 4  # OpenCV fixed-point bits: sub-pixel shape geometry with anti-aliased edges
_ONE = 1 << _SHIFT
_TEXTURE_SIDE = 512
_NOISE_SIDE = 1024
_DISTRACTOR_CHARS = "ABEFHKMNPRSUVWYZ23457&%#$?"  # no O/0/9/@/C/Q/X/+: close to circle, ring, cross


@dataclass(frozen=True)
class Preset:
    """A named dataset size and difficulty profile.

    Attributes:
        name: Preset name, part of the cache folder name.
        n_train: Number of training images.
        n_val: Number of validation images.
        imgsz: Side of the square images in pixels.
        description: What the preset is for.
        profile: How rendering parameters follow the difficulty: ``"standard"`` (``_params``) or ``"demo"``
            (``_demo_params``: fewer, larger, higher-contrast objects and a moderate hard end).
        version: Version of this preset's output, part of the cache folder name; bump it whenever the preset's
            images or labels change (``GENERATOR_VERSION`` is the version of the standard profile).
    """

    name: str
    n_train: int
    n_val: int
    imgsz: int
    description: str
    profile: str = "standard"
    version: str = GENERATOR_VERSION


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("tiny", 24, 12, 96, "unit tests; generates in well under a second"),
        Preset("demo", 1152, 512, 128, "README demo: a detector that works after minutes of CPU training", "demo", "4"),
        Preset("bench", 3000, 1000, 256, "benchmarks; thousands of images"),
    )
}


@dataclass(frozen=True)
class _Params:
    """Rendering parameters of one image, all derived from its difficulty."""

    n_objects: int
    size_px: tuple[float, float]
    contrast: tuple[float, float]
    texture_mix: float
    texture_blur: float
    n_clutter: int
    n_occluders: int
    p_overlap: float
    outside: float
    p_textured: float
    global_contrast: float
    blur: float
    noise: float


@dataclass
class _Object:
    """A drawn shape: its class, local mask placement and full (unclipped) area."""

    cls: int
    x0: int
    y0: int
    h: int
    w: int
    area: int


# --------------------------------------------------------------------------------------------------------- textures
def _photo_paths() -> list[Path]:
    """Photos shipped by installed packages, found through their ``__file__``."""
    dirs = []
    for module, sub in (("ultralytics", ("assets",)), ("matplotlib", ("mpl-data", "sample_data"))):
        spec = importlib.util.find_spec(module)  # locates the package without importing it
        if spec is not None and spec.origin:
            dirs.append(Path(spec.origin).parent.joinpath(*sub))
    return sorted(p for d in dirs if d.is_dir() for p in d.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})


def _fractal_noise(rng: np.random.Generator, channels: int, octaves: tuple[int, ...]) -> np.ndarray:
    """Sum of upsampled random grids, ``(side, side, channels)`` float32 normalized to ``[0, 1]``."""
    out = np.zeros((_TEXTURE_SIDE, _TEXTURE_SIDE, channels), np.float32)
    for k, cells in enumerate(octaves):
        grid = rng.random((cells, cells, channels), dtype=np.float32)
        up = cv2.resize(grid, (_TEXTURE_SIDE, _TEXTURE_SIDE), interpolation=cv2.INTER_CUBIC)
        out += 0.7**k * up.reshape(out.shape)
    out -= out.min()
    return out / out.max()


def _procedural_textures() -> list[np.ndarray]:
    """Fallback (and extra) textures: tinted fractal noise, a noise-warped grating and random scribbles."""
    rng = np.random.default_rng(20230405)
    tint = np.array([0.8, 1.0, 1.15], np.float32)
    noise = _fractal_noise(rng, 1, (4, 8, 16, 32, 64, 128)) * tint * 230
    warp = _fractal_noise(rng, 1, (4, 8, 16))[..., 0]
    yy, xx = np.mgrid[0:_TEXTURE_SIDE, 0:_TEXTURE_SIDE].astype(np.float32)
    grating = 0.5 + 0.5 * np.sin((xx + yy * 0.3) / 6 + warp * 12)
    grating = grating[..., None] * np.array([90, 140, 170], np.float32) + 40
    scribble = np.full((_TEXTURE_SIDE, _TEXTURE_SIDE, 3), 120, np.uint8)
    for _ in range(400):
        pts = rng.uniform(0, _TEXTURE_SIDE, 2) + np.cumsum(rng.normal(0, 25, (int(rng.integers(2, 6)), 2)), 0)
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.polylines(scribble, [_fixed(pts)], False, color, int(rng.integers(1, 6)), cv2.LINE_AA, _SHIFT)
    return [np.clip(t, 0, 255).astype(np.uint8) for t in (noise, grating)] + [cv2.GaussianBlur(scribble, (0, 0), 1)]


@lru_cache(maxsize=1)
def _texture_pool() -> tuple[np.ndarray, ...]:
    """Photos (short side resized to 512 px) and procedural textures, as BGR uint8 arrays."""
    pool = []
    for path in _photo_paths():
        im = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if im is None or min(im.shape[:2]) < 64:
            continue
        scale = _TEXTURE_SIDE / min(im.shape[:2])
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        pool.append(cv2.resize(im, None, fx=scale, fy=scale, interpolation=interpolation))
    return tuple(pool + _procedural_textures())


def _texture_crop(
    rng: np.random.Generator, textures: tuple[np.ndarray, ...], w: int, h: int, zoom: tuple[float, float]
) -> np.ndarray:
    """A random, color-jittered texture crop ``zoom`` times larger than ``(w, h)``, resized to ``(h, w, 3)`` float32.

    Crops are bounded relative to the output so that resizing stays cheap for small object patches.
    """
    tex = textures[rng.integers(len(textures))]
    th, tw = tex.shape[:2]
    side = rng.uniform(*zoom) * max(w, h)
    cw = max(2, min(tw, round(side * rng.uniform(0.75, 1.33))))
    ch = max(2, min(th, round(side)))
    x0, y0 = rng.integers(0, tw - cw + 1), rng.integers(0, th - ch + 1)
    crop = cv2.resize(tex[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    crop = crop.astype(np.float32)
    mean = np.array(cv2.mean(crop)[:3], np.float32)
    gain = rng.uniform(0.75, 1.25, 3).astype(np.float32)
    return (crop - mean) * np.float32(rng.uniform(0.7, 1.3)) + mean * gain + np.float32(rng.uniform(-30, 30))


# ---------------------------------------------------------------------------------------------------- difficulty
def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


def _smoothstep(lo: float, hi: float, x: float) -> float:
    t = min(max((x - lo) / (hi - lo), 0.0), 1.0)
    return t * t * (3 - 2 * t)


def _params(rng: np.random.Generator, d: float, imgsz: int) -> _Params:
    """Interpolate every rendering parameter between the easy (``d=0``) and hard (``d=1``) extremes."""
    res = imgsz / 160  # blur radii are tuned at 160 px
    n_lo, n_hi = round(_lerp(1, 10, d)), round(_lerp(3, 30, d))
    return _Params(
        n_objects=int(rng.integers(n_lo, n_hi + 1)),
        size_px=(imgsz * _lerp(0.26, 0.05, d), imgsz * _lerp(0.50, 0.13, d)),
        contrast=(_lerp(0.55, 0.12, d), _lerp(0.85, 0.25, d)),
        texture_mix=_smoothstep(0.1, 0.6, d) * float(rng.uniform(0.85, 1.0)),
        texture_blur=_lerp(5.0, 0.0, min(d / 0.7, 1.0)) * res,
        n_clutter=int(rng.poisson(14 * max(0.0, (d - 0.15) / 0.85))),
        n_occluders=int(rng.poisson(_lerp(0, 6, d**1.5))),
        p_overlap=max(0.0, (d - 0.3) / 0.7),
        outside=0.3 * max(0.0, (d - 0.4) / 0.6),
        p_textured=0.6 * d,
        global_contrast=_lerp(1.0, 0.7, d),
        blur=1.2 * d**2 * res * float(rng.uniform(0.5, 1.0)),
        noise=16.0 * d**1.5 * float(rng.uniform(0.6, 1.0)),
    )


def _demo_params(rng: np.random.Generator, d: float, imgsz: int) -> _Params:
    """The demo preset's profile: what a small detector learns in minutes, with a difficulty spread that still matters.

    Against the standard profile (``_params``): 1-12 objects instead of 1-30, larger at the hard end (9-18 % of the
    image side instead of 5-13 %), more contrast, and less clutter, occlusion, blur and noise. The easy end is one or
    two large, clean shapes that one backbone detects; the hard end has up to 12 small, low-contrast objects on sharp
    photo backgrounds with distractors, textured objects, overlaps and border cut-offs, where a second backbone pays.
    Most objects sit in hard images (about 70 % of them in images of difficulty > 0.5), so mAP, which averages over
    objects, weighs the images where the hard route helps (on three training seeds of the demo recipe the hard route
    led by +0.009 to +0.069 mAP50-95; version 3, 1-7 objects, left the sign of that lead to the seed).
    """
    res = imgsz / 160
    n_lo, n_hi = round(_lerp(1, 4, d)), round(_lerp(2, 12, d))
    return _Params(
        n_objects=int(rng.integers(n_lo, n_hi + 1)),
        size_px=(imgsz * _lerp(0.30, 0.09, d), imgsz * _lerp(0.48, 0.18, d)),
        contrast=(_lerp(0.65, 0.16, d), _lerp(0.95, 0.38, d)),
        texture_mix=_smoothstep(0.15, 0.7, d) * float(rng.uniform(0.8, 1.0)),
        texture_blur=_lerp(5.0, 0.0, min(d / 0.75, 1.0)) * res,
        n_clutter=int(rng.poisson(12 * max(0.0, (d - 0.2) / 0.8))),
        n_occluders=int(rng.poisson(_lerp(0, 3.5, d**1.5))),
        p_overlap=0.6 * max(0.0, (d - 0.35) / 0.65),
        outside=0.25 * max(0.0, (d - 0.45) / 0.55),
        p_textured=0.5 * d,
        global_contrast=_lerp(1.0, 0.72, d),
        blur=1.0 * d**2 * res * float(rng.uniform(0.5, 1.0)),
        noise=12.0 * d**1.5 * float(rng.uniform(0.6, 1.0)),
    )


_PROFILES = {"standard": _params, "demo": _demo_params}


# -------------------------------------------------------------------------------------------------------- shapes
def _fixed(pts: np.ndarray) -> np.ndarray:
    return np.round(pts * _ONE).astype(np.int32)


def _rotated(pts: np.ndarray, angle: float, cx: float, cy: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return pts @ np.array([[c, s], [-s, c]]) + (cx, cy)


def _polygon(cls_name: str, r: float, rng: np.random.Generator) -> np.ndarray:
    """Vertices (centered at 0, inside radius ``r``) of a polygonal shape class."""
    if cls_name == "rectangle":
        aspect = rng.uniform(0.45, 1.0)
        w = 2 * r / math.sqrt(1 + aspect * aspect)
        hw, hh = w / 2, aspect * w / 2
        return np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]])
    if cls_name == "triangle":
        ang = np.arange(3) * (2 * math.pi / 3) + rng.normal(0, 0.12, 3)
        return r * np.stack([np.cos(ang), np.sin(ang)], 1)
    if cls_name == "cross":
        t = r * rng.uniform(0.2, 0.3)
        s = math.sqrt(r * r - t * t)
        q = [(t, s), (t, t), (s, t), (s, -t), (t, -t), (t, -s), (-t, -s), (-t, -t), (-s, -t), (-s, t), (-t, t), (-t, s)]
        return np.array(q)
    if cls_name == "star":
        radii = np.tile([r, r * rng.uniform(0.38, 0.5)], 5)
        ang = np.arange(10) * (math.pi / 5)
        return radii[:, None] * np.stack([np.cos(ang), np.sin(ang)], 1)
    raise ValueError(f"not a polygon class: {cls_name}")


def _shape_mask(cls: int, cx: float, cy: float, size: float, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
    """Anti-aliased uint8 mask of one object in a local window, and the window's top-left image coordinates."""
    r = size / 2
    x0, y0 = math.floor(cx - r) - 1, math.floor(cy - r) - 1
    n = math.ceil(size) + 3
    mask = np.zeros((n, n), np.uint8)
    lcx, lcy = cx - x0, cy - y0
    name = CLASS_NAMES[cls]
    if name in {"circle", "ring"}:
        center = (round(lcx * _ONE), round(lcy * _ONE))
        cv2.circle(mask, center, round(r * _ONE), 255, -1, cv2.LINE_AA, _SHIFT)
        if name == "ring":
            cv2.circle(mask, center, round(r * rng.uniform(0.45, 0.62) * _ONE), 0, -1, cv2.LINE_AA, _SHIFT)
    else:
        pts = _rotated(_polygon(name, r, rng), rng.uniform(0, 2 * math.pi), lcx, lcy)
        cv2.fillPoly(mask, [_fixed(pts)], 255, cv2.LINE_AA, _SHIFT)
    return mask, x0, y0


def _distractor_mask(cx: float, cy: float, size: float, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
    """Mask of a non-class clutter item: a stroke, an irregular blob or a letter."""
    r = size / 2
    x0, y0 = math.floor(cx - r) - 1, math.floor(cy - r) - 1
    n = math.ceil(size) + 3
    mask = np.zeros((n, n), np.uint8)
    lc = np.array([cx - x0, cy - y0])
    kind = rng.integers(3)
    if kind == 0:
        k = int(rng.integers(2, 5))
        pts = lc + rng.uniform(-r, r, (k, 2)) * 0.9
        thick = max(1, round(size * rng.uniform(0.04, 0.1)))
        cv2.polylines(mask, [_fixed(pts)], False, 255, thick, cv2.LINE_AA, _SHIFT)
    elif kind == 1:
        ang = np.linspace(0, 2 * math.pi, 24, endpoint=False)
        harmonics = rng.normal(0, 0.15, (3, 2))  # a smooth lumpy outline, elongated so it never reads as a circle
        wobble = sum(a * np.cos((k + 2) * ang) + b * np.sin((k + 2) * ang) for k, (a, b) in enumerate(harmonics))
        rad = r * np.clip(0.8 + wobble, 0.4, 1.0)
        outline = rad[:, None] * np.stack([np.cos(ang), np.sin(ang) * rng.uniform(0.35, 0.7)], 1)
        pts = _rotated(outline, rng.uniform(0, 2 * math.pi), *lc)
        cv2.fillPoly(mask, [_fixed(pts)], 255, cv2.LINE_AA, _SHIFT)
    else:
        ch = _DISTRACTOR_CHARS[rng.integers(len(_DISTRACTOR_CHARS))]
        scale = size / 30
        thick = max(1, round(size / 12))
        (tw, th), _ = cv2.getTextSize(ch, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        org = (round(lc[0] - tw / 2), round(lc[1] + th / 2))
        cv2.putText(mask, ch, org, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thick, cv2.LINE_AA)
    return mask, x0, y0


# ------------------------------------------------------------------------------------------------------ painting
def _clip_window(x0: int, y0: int, h: int, w: int, side: int) -> tuple[int, int, int, int] | None:
    """Intersection of a local window with the image, as ``(ix0, iy0, ix1, iy1)``, or None if empty."""
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + w, side), min(y0 + h, side)
    return (ix0, iy0, ix1, iy1) if ix1 > ix0 and iy1 > iy0 else None


def _local_mean(canvas: np.ndarray, x0: int, y0: int, n: int) -> np.ndarray:
    win = _clip_window(x0, y0, n, n, canvas.shape[0])
    if win is None:
        return np.array(cv2.mean(canvas)[:3], np.float32)
    ix0, iy0, ix1, iy1 = win
    return np.array(cv2.mean(canvas[iy0:iy1, ix0:ix1])[:3], np.float32)


def _color_against(rng: np.random.Generator, bg: np.ndarray, contrast: float) -> np.ndarray:
    """A random color at RGB distance ``contrast * 300`` from ``bg``, on whichever side clips less."""
    u = rng.normal(size=3)
    delta = (contrast * 300.0 / (math.sqrt(float(u @ u)) + 1e-9)) * u
    plus, minus = np.clip(bg + delta, 0, 255), np.clip(bg - delta, 0, 255)
    return (plus if float(np.square(plus - bg).sum()) >= float(np.square(minus - bg).sum()) else minus).astype(
        np.float32
    )


def _paint(
    canvas: np.ndarray, idmap: np.ndarray, mask: np.ndarray, x0: int, y0: int, fill: np.ndarray, oid: int
) -> None:
    """Alpha-blend ``fill`` through ``mask`` into the canvas and claim the covered pixels for ``oid``."""
    win = _clip_window(x0, y0, *mask.shape, canvas.shape[0])
    if win is None:
        return
    ix0, iy0, ix1, iy1 = win
    m = mask[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
    if fill.ndim == 3:
        fill = fill[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
    region = canvas[iy0:iy1, ix0:ix1]
    region += (m[..., None] * np.float32(1 / 255)) * (fill - region)
    idmap[iy0:iy1, ix0:ix1][m >= 128] = oid


def _fill_for(
    rng: np.random.Generator, color: np.ndarray, p_textured: float, n: int, textures: tuple[np.ndarray, ...]
) -> np.ndarray:
    """A flat color, or (with probability ``p_textured``) a photo patch re-centered on that color."""
    if rng.random() >= p_textured:
        return color
    patch = _texture_crop(rng, textures, n, n, (1.0, 4.0))
    return color + (patch - np.array(cv2.mean(patch)[:3], np.float32)) * np.float32(rng.uniform(0.3, 0.8))


def _background(rng: np.random.Generator, p: _Params, side: int, textures: tuple[np.ndarray, ...]) -> np.ndarray:
    """A flat, softly shaded color blended with a photo crop whose weight and sharpness grow with difficulty."""
    base = rng.uniform(35, 220) + rng.normal(0, 18, 3)
    ramp = np.linspace(-1, 1, side, dtype=np.float32)
    ang = rng.uniform(0, 2 * math.pi)
    shade = (math.cos(ang) * ramp[None, :] + math.sin(ang) * ramp[:, None]) * np.float32(rng.uniform(0, 25))
    canvas = np.empty((side, side, 3), np.float32)
    canvas[:] = base.astype(np.float32)
    canvas += shade[..., None]
    if p.texture_mix > 0.01:
        photo = _texture_crop(rng, textures, side, side, (0.6, 3.0))
        if p.texture_blur > 0.3:
            photo = cv2.GaussianBlur(photo, (0, 0), p.texture_blur)
        canvas += np.float32(p.texture_mix) * (photo - canvas)
    return canvas


def _position(
    rng: np.random.Generator, size: float, side: int, p: _Params, placed: list[tuple[float, float, float]]
) -> tuple[float, float] | None:
    """A center for a new object; avoids the others unless this object may overlap, None if no room."""
    margin = size / 2 * (1 - 2 * p.outside)
    overlap_ok = rng.random() < p.p_overlap
    for _ in range(30):
        cx, cy = rng.uniform(margin, side - margin, 2)
        if overlap_ok or all(math.hypot(cx - x, cy - y) > (size / 2 + r) * 1.05 for x, y, r in placed):
            return float(cx), float(cy)
    return None


def _draw_clutter(
    rng: np.random.Generator,
    canvas: np.ndarray,
    idmap: np.ndarray,
    p: _Params,
    n: int,
    oid: int,
    textures: tuple[np.ndarray, ...],
) -> None:
    """Draw ``n`` distractors at object-like sizes; ``oid`` is 0 under the objects and the occluder id on top."""
    side = canvas.shape[0]
    for _ in range(n):
        size = float(np.exp(rng.uniform(math.log(p.size_px[0]), math.log(p.size_px[1]))))
        cx, cy = rng.uniform(0, side, 2)
        mask, x0, y0 = _distractor_mask(cx, cy, size, rng)
        color = _color_against(rng, _local_mean(canvas, x0, y0, mask.shape[0]), rng.uniform(*p.contrast))
        _paint(canvas, idmap, mask, x0, y0, _fill_for(rng, color, p.p_textured, mask.shape[0], textures), oid)


def _draw_objects(
    rng: np.random.Generator, canvas: np.ndarray, idmap: np.ndarray, p: _Params, textures: tuple[np.ndarray, ...]
) -> list[_Object]:
    """Draw the labelled shapes in order (later ones occlude earlier ones); their ids are 1, 2, ..."""
    side = canvas.shape[0]
    objects: list[_Object] = []
    placed: list[tuple[float, float, float]] = []
    lo, hi = math.log(p.size_px[0]), math.log(p.size_px[1])
    for _ in range(p.n_objects):
        size = float(np.exp(rng.uniform(lo, hi)))
        cls = int(rng.integers(len(CLASS_NAMES)))
        pos = _position(rng, size, side, p, placed)
        if pos is None:
            continue
        placed.append((*pos, size / 2))
        mask, x0, y0 = _shape_mask(cls, *pos, size, rng)
        color = _color_against(rng, _local_mean(canvas, x0, y0, mask.shape[0]), rng.uniform(*p.contrast))
        fill = _fill_for(rng, color, p.p_textured, mask.shape[0], textures)
        _paint(canvas, idmap, mask, x0, y0, fill, len(objects) + 1)
        objects.append(_Object(cls, x0, y0, *mask.shape, int(np.count_nonzero(mask >= 128))))
    return objects


def _visible_boxes(idmap: np.ndarray, objects: list[_Object]) -> np.ndarray:
    """Tight ``(cls, x0, y0, x1, y1)`` pixel boxes of the objects that pass the label rule (see module docstring)."""
    boxes = []
    for oid, ob in enumerate(objects, start=1):
        win = _clip_window(ob.x0, ob.y0, ob.h, ob.w, idmap.shape[0])
        if win is None:
            continue
        ix0, iy0, ix1, iy1 = win
        vis = idmap[iy0:iy1, ix0:ix1] == oid
        if np.count_nonzero(vis) < MIN_VISIBLE * ob.area:
            continue
        rows, cols = np.flatnonzero(vis.any(1)), np.flatnonzero(vis.any(0))
        box = (ob.cls, ix0 + cols[0], iy0 + rows[0], ix0 + cols[-1] + 1, iy0 + rows[-1] + 1)
        if box[3] - box[1] >= MIN_BOX_PX and box[4] - box[2] >= MIN_BOX_PX:
            boxes.append(box)
    return np.array(boxes, dtype=np.int64).reshape(-1, 5)


@lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """A fixed field of unit Gaussian noise; random crops of it are much cheaper than fresh noise per image."""
    return np.random.default_rng(1).standard_normal((_NOISE_SIDE, _NOISE_SIDE, 3), dtype=np.float32)


def _noise_crop(rng: np.random.Generator, side: int) -> np.ndarray:
    """A random ``(side, side, 3)`` window of the noise bank (tiled when ``side`` exceeds the bank)."""
    bank = _noise_bank()
    if side > _NOISE_SIDE - 1:
        reps = side // _NOISE_SIDE + 1
        bank = np.tile(bank, (reps, reps, 1))
    x0, y0 = rng.integers(0, bank.shape[0] - side + 1, 2)
    return bank[y0 : y0 + side, x0 : x0 + side]


def _degrade(rng: np.random.Generator, canvas: np.ndarray, p: _Params) -> np.ndarray:
    """Global contrast loss, optical blur and sensor noise, then quantization to uint8."""
    if p.global_contrast < 1:
        mean = np.array(cv2.mean(canvas)[:3], np.float32)
        canvas = (canvas - mean) * np.float32(p.global_contrast) + mean
    if p.blur > 0.3:
        canvas = cv2.GaussianBlur(canvas, (0, 0), p.blur)
    if p.noise > 0.5:
        canvas += _noise_crop(rng, canvas.shape[0]) * np.float32(p.noise)
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)


def _render_image(
    rng: np.random.Generator, d: float, side: int, textures: tuple[np.ndarray, ...], profile: str = "standard"
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Render one image of difficulty ``d``.

    Args:
        rng: The image's own random generator.
        d: Difficulty in ``[0, 1]``.
        side: Image side in pixels.
        textures: Texture pool (see ``_texture_pool``).
        profile: Difficulty profile, a key of ``_PROFILES``.

    Returns:
        The BGR uint8 image, its labelled boxes as an ``(N, 5)`` int array ``(cls, x0, y0, x1, y1)`` in pixels, and
        per-image statistics for ``difficulty.csv``.
    """
    p = _PROFILES[profile](rng, d, side)
    canvas = _background(rng, p, side, textures)
    idmap = np.zeros((side, side), np.uint8)
    _draw_clutter(rng, canvas, idmap, p, p.n_clutter, 0, textures)
    objects = _draw_objects(rng, canvas, idmap, p, textures)
    _draw_clutter(rng, canvas, idmap, p, p.n_occluders, _OCCLUDER_ID, textures)
    boxes = _visible_boxes(idmap, objects)
    image = _degrade(rng, canvas, p)
    sides = np.sqrt((boxes[:, 3] - boxes[:, 1]) * (boxes[:, 4] - boxes[:, 2])) if len(boxes) else np.zeros(1)
    stats = {
        "n_objects": len(boxes),
        "n_unlabelled": len(objects) - len(boxes),
        "mean_box_px": round(float(sides.mean()), 2),
        "min_box_px": round(float(sides.min()), 2),
        "background_texture": round(p.texture_mix, 3),
        "noise_sigma": round(p.noise, 2),
        "blur_sigma": round(p.blur, 2),
    }
    return image, boxes, stats


# ------------------------------------------------------------------------------------------------------- writing
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


# ------------------------------------------------------------------------------------------------------- caching
def _is_complete(folder: Path, spec: _Spec) -> bool:
    """Whether ``folder`` holds a finished dataset of ``spec`` (manifest present, every image and label there)."""
    try:
        manifest = json.loads((folder / _MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("generator_version") != spec.preset.version:
        return False
    for split, n in zip(_SPLITS, (spec.n_train, spec.n_val)):
        for sub in ("images", "labels"):
            d = folder / sub / split
            if not d.is_dir() or sum(1 for _ in d.iterdir()) != n:
                return False
    return (folder / _YAML_NAME).is_file()


def _refresh_yaml(folder: Path, spec: _Spec) -> None:
    """Rewrite the YAML's absolute ``path`` if the dataset folder was moved since it was generated."""
    file = folder / _YAML_NAME
    if (yaml.safe_load(file.read_text()) or {}).get("path") != str(folder):
        tmp = file.with_name(f".{file.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
        _write_yaml(tmp, spec, folder)
        os.replace(tmp, file)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _remove_stale(root: Path, dirname: str) -> None:
    """Remove temporary and trash folders of ``dirname`` left by processes that no longer run."""
    for p in root.glob(f".{dirname}.*-*-*"):
        try:
            pid = int(p.name[len(dirname) + 2 :].split("-")[1])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def _publish(tmp: Path, final: Path, spec: _Spec, force: bool) -> None:
    """Atomically move the finished ``tmp`` folder to ``final`` (replacing an old one only when forced)."""
    if final.exists():
        if not force and _is_complete(final, spec):  # a concurrent run finished first: keep its identical copy
            shutil.rmtree(tmp, ignore_errors=True)
            return
        trash = final.with_name(f".{final.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.rename(final, trash)
        os.rename(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
        return
    try:
        os.rename(tmp, final)
    except OSError:
        if not _is_complete(final, spec):
            raise
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------- public API
def default_datasets_dir() -> Path:
    """Cache root for generated datasets.

    Returns:
        ``$DYDET_DATASETS_DIR`` if set, else ``datasets`` in the dydet home (``$DYDET_HOME``, default
        ``~/.cache/dydet``), i.e. ``~/.cache/dydet/datasets`` by default.
    """
    env = os.environ.get("DYDET_DATASETS_DIR")
    return Path(env).expanduser() if env else dydet_home() / "datasets"


def dataset_dirname(name: str, seed: int, n_train: int, n_val: int, imgsz: int) -> str:
    """Name of a dataset's cache folder; it changes with every input and with the preset's version."""
    version = PRESETS[name].version if name in PRESETS else GENERATOR_VERSION
    return f"{name}-seed{seed}-{n_train}x{n_val}-{imgsz}px-v{version}"


def _positive(value: int | None, default: int, what: str, minimum: int = 1) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ArgumentError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _resolve(name: str, seed: int, n_train: int | None, n_val: int | None, imgsz: int | None) -> _Spec:
    if name not in PRESETS:
        raise ArgumentError(f"unknown synthetic dataset preset {name!r}; valid presets: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    return _Spec(
        name=name,
        seed=_positive(seed, 0, "seed", minimum=0),
        n_train=_positive(n_train, preset.n_train, "n_train"),
        n_val=_positive(n_val, preset.n_val, "n_val"),
        imgsz=_positive(imgsz, preset.imgsz, "imgsz", minimum=32),
    )


def make_dataset(
    name: str = "demo",
    root: str | Path | None = None,
    seed: int = 0,
    n_train: int | None = None,
    n_val: int | None = None,
    imgsz: int | None = None,
    force: bool = False,
    verbose: bool = True,
) -> Path:
    """Generate a synthetic detection dataset on first use and return its data YAML.

    The dataset is written to a temporary sibling folder and renamed into place when complete, so an interrupted run
    never leaves a folder that looks finished; a later call regenerates it. A complete folder is reused as is.

    Args:
        name: Preset name, one of ``PRESETS`` (``tiny``, ``demo``, ``bench``).
        root: Cache root; defaults to ``default_datasets_dir()``.
        seed: Non-negative random seed; the same seed and sizes give identical files.
        n_train: Number of training images (default: the preset's).
        n_val: Number of validation images (default: the preset's).
        imgsz: Side of the square images in pixels, at least 32 (default: the preset's).
        force: Regenerate even if a complete dataset exists.
        verbose: Log what happens and show a progress bar while generating.

    Returns:
        Absolute path of the dataset's ``data.yaml``.

    Raises:
        ValueError: If ``name`` is not a preset, or a size or the seed is out of range.
    """
    spec = _resolve(name, seed, n_train, n_val, imgsz)
    root = (Path(root).expanduser() if root is not None else default_datasets_dir()).resolve()
    final = root / spec.dirname
    if not force and _is_complete(final, spec):
        _refresh_yaml(final, spec)
        return final / _YAML_NAME
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale(root, spec.dirname)
    tmp = root / f".{spec.dirname}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    _log(f"Generating synthetic dataset '{name}' (seed {seed}) into {final}", verbose)
    try:
        rows = _write_images(spec, tmp, verbose)
        _write_metadata(spec, tmp, final, rows)
        _publish(tmp, final, spec, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final / _YAML_NAME


def _difficulty_csv(source: str | Path) -> Path:
    """Locate ``difficulty.csv`` from a data YAML, a dataset folder or the CSV itself."""
    p = Path(source).expanduser()
    if p.is_dir():
        return p / "difficulty.csv"
    if p.suffix.lower() == ".csv":
        return p
    if p.suffix.lower() in {".yaml", ".yml"}:
        data = yaml.safe_load(p.read_text()) or {}
        base = Path(data.get("path") or p.parent)
        base = base if base.is_absolute() else p.parent / base
        if not base.is_dir():  # moved without regenerating: the YAML sits in the dataset folder
            base = p.parent
        return base / data.get("difficulty", "difficulty.csv")
    raise ArgumentError(f"expected a data YAML, a dataset folder or difficulty.csv, got {source}")


def load_difficulty(source: str | Path, split: str | None = None) -> dict[str, float]:
    """Per-image difficulty of a generated dataset.

    Args:
        source: The data YAML returned by ``make_dataset``, the dataset folder, or its ``difficulty.csv``.
        split: Only this split (``"train"`` or ``"val"``); all images if None.

    Returns:
        Mapping from image stem (e.g. ``"000384"``, unique across splits, ``int(stem)`` is the COCO image id) to its
        difficulty in ``[0, 1]``.

    Raises:
        FileNotFoundError: If the CSV does not exist.
        ValueError: If ``source`` is none of the accepted kinds or ``split`` is unknown.
    """
    if split is not None and split not in _SPLITS:
        raise ArgumentError(f"unknown split {split!r}; valid splits: {', '.join(_SPLITS)}")
    with open(_difficulty_csv(source), newline="") as f:
        return {Path(r["file"]).stem: float(r["difficulty"]) for r in csv.DictReader(f) if split in (None, r["split"])}


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate (or reuse) a dydet synthetic detection dataset.")
    parser.add_argument("--name", default="demo", help=f"preset: {', '.join(PRESETS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=None, help="cache root (default: $DYDET_DATASETS_DIR or ~/.cache/dydet)")
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--n-val", type=int, default=None)
    parser.add_argument("--imgsz", type=int, default=None)
    parser.add_argument("--force", action="store_true", help="regenerate even if cached")
    parser.add_argument("--quiet", action="store_true")
    a = parser.parse_args(argv)
    try:
        path = make_dataset(a.name, a.root, a.seed, a.n_train, a.n_val, a.imgsz, a.force, not a.quiet)
    except ValueError as e:
        parser.error(str(e))
    print(path)


if __name__ == "__main__":
    _main()
