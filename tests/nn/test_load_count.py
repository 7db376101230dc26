"""Loading a dydet model into another logs a transfer count that never exceeds what the model has."""

import re

from dydet.nn.tasks import DynamicDetectionModel


def test_transferred_count_covers_the_router(captured):
    src = DynamicDetectionModel("dy-yolo11n.yaml", nc=2, verbose=False)
    dst = DynamicDetectionModel("dy-yolo11n.yaml", nc=2, verbose=False)
    dst.load(src)
    (line,) = [m for m in captured if m.startswith("Transferred")]
    n, total = map(int, re.match(r"Transferred (\d+)/(\d+) items", line).groups())
    assert n == total == len(dst.state_dict())
