"""Background and object textures: crops of photos shipped by installed packages, and procedural noise."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from dydet.data.synthetic.presets import _ONE, _SHIFT, _TEXTURE_SIDE


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


def _fixed(pts: np.ndarray) -> np.ndarray:
    return np.round(pts * _ONE).astype(np.int32)
