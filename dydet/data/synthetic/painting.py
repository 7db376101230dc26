"""Painting one image: shapes, distractors, clutter, occlusion, degradation, and the visible-box labels."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from dydet.data.synthetic.presets import (
    _DISTRACTOR_CHARS,
    _NOISE_SIDE,
    _OCCLUDER_ID,
    _ONE,
    _SHIFT,
    CLASS_NAMES,
    MIN_BOX_PX,
    MIN_VISIBLE,
    _Object,
    _Params,
)
from dydet.data.synthetic.profiles import _PROFILES
from dydet.data.synthetic.textures import _fixed, _texture_crop


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
