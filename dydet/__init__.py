"""dydet: DynamicDet (CVPR 2023) on Ultralytics."""

# Must run before anything imports ultralytics: it reads these settings once, at import (see dydet/utils/offline.py).
from dydet.utils.offline import setup_offline

setup_offline()

from dydet.models import DynamicYOLO  # noqa: E402
from dydet.nn.tasks import DynamicDetectionModel  # noqa: E402

__version__ = "0.1.0"
__all__ = ["DynamicDetectionModel", "DynamicYOLO", "__version__"]
