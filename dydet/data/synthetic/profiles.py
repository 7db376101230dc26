"""Difficulty profiles: how an image's rendering parameters follow its difficulty (standard and demo)."""

from __future__ import annotations

import numpy as np

from dydet.data.synthetic.presets import _Params


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
        n_clutter=int(rng.poisson(18 * max(0.0, (d - 0.15) / 0.85))),
        n_occluders=int(rng.poisson(_lerp(0, 6, d**1.5))),
        p_overlap=max(0.0, (d - 0.3) / 0.7),
        outside=0.3 * max(0.0, (d - 0.4) / 0.6),
        p_textured=0.6 * d,
        global_contrast=_lerp(1.0, 0.7, d),
        blur=1.2 * d**2 * res * float(rng.uniform(0.5, 1.0)),
        noise=16.0 * d**1.5 * float(rng.uniform(0.6, 1.0)),
    )


def _demo_params(rng: np.random.Generator, d: float, imgsz: int) -> _Params:
    """The demo preset's profile: easy images one backbone gets right, hard ones where a second backbone pays.

    The easy end is one large, high-contrast shape on a plain background, which both routes detect almost perfectly
    after a few epochs. The hard end holds 6-16 small shapes on sharp photo backgrounds among letter-like
    distractors, textured fills, overlaps and border cut-offs: hard because telling objects from look-alikes takes
    capacity, not because the signal is gone (blur, noise and contrast loss stay mild, unlike the standard profile's
    hard end, where both routes fail alike). Most objects sit in hard images, so mAP, which averages over objects,
    weighs the images where the hard route helps.
    """
    res = imgsz / 160
    n_lo, n_hi = round(_lerp(1, 6, d)), round(_lerp(1, 16, d))
    return _Params(
        n_objects=int(rng.integers(n_lo, n_hi + 1)),
        size_px=(imgsz * _lerp(0.34, 0.11, d), imgsz * _lerp(0.50, 0.20, d)),
        contrast=(_lerp(0.75, 0.22, d), _lerp(1.0, 0.45, d)),
        texture_mix=_smoothstep(0.1, 0.6, d) * float(rng.uniform(0.8, 1.0)),
        texture_blur=_lerp(5.0, 0.0, min(d / 0.75, 1.0)) * res,
        n_clutter=int(rng.poisson(18 * max(0.0, (d - 0.15) / 0.85))),
        n_occluders=int(rng.poisson(_lerp(0, 3.0, d**1.5))),
        p_overlap=0.6 * max(0.0, (d - 0.35) / 0.65),
        outside=0.25 * max(0.0, (d - 0.5) / 0.5),
        p_textured=0.6 * d,
        global_contrast=_lerp(1.0, 0.8, d),
        blur=0.6 * d**2 * res * float(rng.uniform(0.5, 1.0)),
        noise=8.0 * d**1.5 * float(rng.uniform(0.6, 1.0)),
    )


_PROFILES = {"standard": _params, "demo": _demo_params}
