"""The README's main job, end to end: `dydet train` with no arguments, as `make demo` runs it (slow: minutes).

Checks what every run of the demo must give, never its time: a calibrated model whose easy route detects, whose hard
route is more accurate and whose router beats random routing at a 50/50 split (on three training seeds the margins
were +0.074 to +0.083 and +0.022 to +0.030 mAP50-95, docs/BENCHMARKS.md, "The demo job"), routed example predictions
and the closing summary.
"""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from dydet.nn.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    project = tmp_path_factory.mktemp("demo")
    dydet = str(Path(sys.executable).with_name("dydet"))
    out = subprocess.run(
        [dydet, "train", f"project={project}", "name=demo", "exist_ok=True"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    run = project / "demo-router"
    with open(run / "calibration" / "tradeoff.csv", newline="") as f:
        rows = {round(float(r["hard_ratio"]), 1): {k: float(v) for k, v in r.items()} for r in csv.DictReader(f)}
    return run, rows, out.stdout + out.stderr


@pytest.mark.slow
def test_demo_job_trains_a_calibrated_model_whose_hard_route_pays(demo_run):
    run, rows, log = demo_run
    model, _ = load_checkpoint(run / "weights" / "final.pt")
    assert model.stage == 2 and model.calibration["n_images"] == 512
    easy, hard = rows[0.0], rows[1.0]  # hard ratio 0: every image easy; 1: every image hard
    assert easy["mAP50"] > 0.5, easy
    assert hard["mAP50-95"] > easy["mAP50-95"], (easy, hard)
    assert len(list((run / "predictions").glob("*.jpg"))) >= 3
    assert "Demo finished" in log and "dydet predict model=" in log


@pytest.mark.slow
def test_demo_router_beats_random_routing_at_a_50_50_split(demo_run):
    half = demo_run[1][0.5]
    assert half["mAP50-95"] > half["random_mAP50-95"], half
