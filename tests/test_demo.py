"""The README's main job, end to end: `dydet train` with no arguments, as `make demo` runs it (slow: minutes).

Checks the demo's accuracy targets (issue 16), never its time: the easy route reaches mAP50 >= 0.5 on the demo's
validation split, the hard route is above the easy route, and the router beats random routing at a 50/50 split.
Demo data v4, three training seeds at 1 thread (docs/BENCHMARKS.md 9.1): easy mAP50 0.49-0.54, hard - easy +0.009 to
+0.069 mAP50-95, router within 0.005 of random at 50/50: the easy-route assertion fails on seed 1, the router one on
seeds 0 and 2.
"""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from dydet.utils.checkpoint import load_checkpoint


@pytest.mark.slow
def test_demo_job_trains_a_calibrated_model_that_detects(tmp_path):
    dydet = str(Path(sys.executable).with_name("dydet"))
    out = subprocess.run(
        [dydet, "train", f"project={tmp_path}", "name=demo", "exist_ok=True"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "demo-router"
    model, _ = load_checkpoint(run / "weights" / "final.pt")
    assert model.stage == 2 and model.calibration["n_images"] > 0
    with open(run / "calibration" / "tradeoff.csv", newline="") as f:
        rows = {round(float(r["hard_ratio"]), 1): {k: float(v) for k, v in r.items()} for r in csv.DictReader(f)}
    easy, half, hard = rows[0.0], rows[0.5], rows[1.0]  # hard ratio 0: every image easy; 1: every image hard
    assert easy["mAP50"] >= 0.5, easy
    assert hard["mAP50-95"] > easy["mAP50-95"], (easy, hard)
    assert half["mAP50-95"] > half["random_mAP50-95"], half
    assert len(list((run / "predictions").glob("*.jpg"))) >= 3
    log = out.stdout + out.stderr
    assert "Demo finished" in log and "dydet predict model=" in log
