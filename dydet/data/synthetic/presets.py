"""Constants, presets and the records of one rendered image (parameters, objects) of the synthetic datasets."""

from __future__ import annotations

from dataclasses import dataclass

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
        Preset("demo", 1152, 512, 128, "README demo: a detector that works after minutes of CPU training", "demo", "6"),
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


def dataset_dirname(name: str, seed: int, n_train: int, n_val: int, imgsz: int) -> str:
    """Name of a dataset's cache folder; it changes with every input and with the preset's version."""
    version = PRESETS[name].version if name in PRESETS else GENERATOR_VERSION
    return f"{name}-seed{seed}-{n_train}x{n_val}-{imgsz}px-v{version}"
