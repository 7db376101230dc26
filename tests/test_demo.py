"""The README's main job, end to end: `dydet train` with no arguments (slow: about 10 minutes on 2 CPU cores)."""

import subprocess
import sys
from pathlib import Path

import pytest

from dydet.utils.checkpoint import load_checkpoint


@pytest.mark.slow
def test_demo_job_trains_a_calibrated_model_that_detects(tmp_path):
    dydet = str(Path(sys.executable).with_name("dydet"))
    out = subprocess.run([dydet, "train", f"project={tmp_path}", "name=demo"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    final = tmp_path / "demo-router" / "weights" / "final.pt"
    model, _ = load_checkpoint(final)
    assert model.stage == 2 and model.calibration["n_images"] > 0
    log = out.stdout + out.stderr
    assert "Trade-off over hard ratios" in log
    hard_row = [line for line in log.splitlines() if line.strip().startswith("hard route")][-1]
    assert float(hard_row.split()[-2]) > 0.1  # mAP50 of the hard route: the demo model visibly detects
