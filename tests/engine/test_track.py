"""`DynamicYOLO.track` / `dydet track`: Ultralytics' trackers on a routed model; each frame keeps route and score."""

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from dydet import DynamicYOLO

DYDET = str(Path(sys.executable).with_name("dydet"))
FRAMES = 6
# ByteTrack with thresholds low enough that a model trained for one epoch starts tracks
LOW_BYTETRACK = """tracker_type: bytetrack
track_high_thresh: 0.001
track_low_thresh: 0.0005
new_track_thresh: 0.001
track_buffer: 30
match_thresh: 0.99
fuse_score: False
"""


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """A short video: a filled circle and a square moving right over a grey background."""
    path = tmp_path_factory.mktemp("video") / "shapes.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 96))
    assert writer.isOpened()
    for i in range(FRAMES):
        frame = np.full((96, 96, 3), 90, np.uint8)
        cv2.circle(frame, (20 + 4 * i, 30), 12, (30, 200, 240), -1)
        cv2.rectangle(frame, (50 - 3 * i, 55), (74 - 3 * i, 79), (200, 60, 40), -1)
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def tracker_yaml(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("trackers") / "low_bytetrack.yaml"
    path.write_text(LOW_BYTETRACK)
    return path


def test_track_routes_every_frame_and_keeps_route_and_score(full_run, video, tracker_yaml, tmp_path):
    model = DynamicYOLO(full_run[0].ckpt_path)
    results = model.track(
        source=str(video), tracker=str(tracker_yaml), imgsz=64, conf=0.001, project=str(tmp_path), verbose=False
    )
    assert len(results) == FRAMES
    assert all(r.route in {"easy", "hard"} and isinstance(r.score, float) for r in results)
    assert any(r.boxes.id is not None for r in results)  # the tracker ran and gave track IDs
    forced = model.track(source=str(video), tracker=str(tracker_yaml), imgsz=64, conf=0.001, route="hard")
    assert all(r.route == "hard" and r.score is None for r in forced)


def test_cli_track_saves_a_video_and_logs_each_frames_route(full_run, video, tmp_path):
    cmd = [DYDET, "track", f"model={full_run[0].ckpt_path}", f"source={video}", "imgsz=64"]
    cmd += ["tracker=bytetrack.yaml", f"project={tmp_path}", "name=t", "--threshold", "0.5"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    log = out.stdout + out.stderr
    frame_lines = [line for line in log.splitlines() if "video 1/1 (frame" in line]
    assert len(frame_lines) == FRAMES and all(
        (" easy, easiness " in x or " hard, easiness " in x) for x in frame_lines
    ), frame_lines
    assert list((tmp_path / "t").glob("shapes*"))  # the annotated video
