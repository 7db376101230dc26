"""dydet: DynamicDet (CVPR 2023) on Ultralytics.

``import dydet`` has no side effects and does not import Ultralytics. The model classes are imported on first use
(``from dydet import DynamicYOLO``), after `dydet.utils.offline.setup_offline()`, which must run before Ultralytics is
imported (it reads its offline settings once, at import).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["DynamicDetectionModel", "DynamicYOLO", "__version__"]


def __getattr__(name: str) -> Any:
    """Import `DynamicYOLO` / `DynamicDetectionModel` lazily, making Ultralytics offline first."""
    if name == "DynamicYOLO":
        from dydet.utils.offline import setup_offline

        setup_offline()
        from dydet.models import DynamicYOLO

        return DynamicYOLO
    if name == "DynamicDetectionModel":
        from dydet.utils.offline import setup_offline

        setup_offline()
        from dydet.nn.tasks import DynamicDetectionModel

        return DynamicDetectionModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
