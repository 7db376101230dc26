"""dydet: DynamicDet (CVPR 2023) on Ultralytics.

``import dydet`` has no side effects and does not import Ultralytics. The model classes are imported on first use
(``from dydet import DynamicYOLO``), after `dydet.utils.offline.setup_offline()`, which must run before Ultralytics is
imported (it reads its offline settings once, at import).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["DynamicDetectionModel", "DynamicRCNN", "DynamicYOLO", "StaticYOLO", "__version__"]

_LAZY = {
    "DynamicYOLO": "dydet.models.yolo.model",
    "DynamicRCNN": "dydet.models.rcnn.model",
    "StaticYOLO": "dydet.models.yolo.static",
    "DynamicDetectionModel": "dydet.nn.tasks",
}


def __getattr__(name: str) -> Any:
    """Import the model classes lazily (`DynamicYOLO`, `DynamicRCNN`, `StaticYOLO`, ...), offline first."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    from dydet.utils.offline import setup_offline

    setup_offline()
    return getattr(importlib.import_module(_LAZY[name]), name)
