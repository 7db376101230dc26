"""Loading a dydet model into another logs a transfer count that never exceeds what the model has."""

import logging
import re

from ultralytics.utils import LOGGER

from dydet.nn.tasks import DynamicDetectionModel


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_transferred_count_covers_the_router():
    src = DynamicDetectionModel("dy-yolo11n.yaml", nc=2, verbose=False)
    dst = DynamicDetectionModel("dy-yolo11n.yaml", nc=2, verbose=False)
    handler = _Capture()
    LOGGER.addHandler(handler)
    try:
        dst.load(src)
    finally:
        LOGGER.removeHandler(handler)
    (line,) = [m for m in handler.lines if m.startswith("Transferred")]
    n, total = map(int, re.match(r"Transferred (\d+)/(\d+) items", line).groups())
    assert n == total == len(dst.state_dict())
