"""What dydet prints: a short training log (verbose=True for more), one line for stage-2 freezing, routes in predict."""

import re
import subprocess
import sys
from pathlib import Path

from dydet import DynamicYOLO


def test_stage2_freezing_is_one_summary_line(full_run, tiny_data, tmp_path, tiny_train, captured):
    stage1 = full_run[2] / "full" / "weights" / "best.pt"
    args = {k: v for k, v in tiny_train.items() if k != "epochs"}
    DynamicYOLO(stage1).train(
        data=str(tiny_data), project=str(tmp_path), stage=2, stage2_epochs=1, calibrate=False, **args
    )
    assert not [line for line in captured if line.startswith("Freezing layer 'model.")]
    summary = [line for line in captured if line.startswith("Froze ")]
    assert len(summary) == 1 and int(summary[0].split()[1]) > 100, summary


def test_predict_line_says_route_and_score(full_run, tiny_data, tmp_path, captured):
    images = sorted((tiny_data.parent / "images" / "val").glob("*"))[:2]
    model = DynamicYOLO(full_run[0].ckpt_path)
    model.predict([str(p) for p in images], imgsz=64, project=str(tmp_path), verbose=True)
    lines = [x for record in captured for x in record.splitlines() if re.search(r"\d+: 64x64 ", x)]
    assert len(lines) == 2, captured[-5:]
    assert all(re.search(r"(easy|hard), easiness \d\.\d\d, [\d.]+ms$", line) for line in lines), lines
    captured.clear()
    model.predict(str(images[0]), imgsz=64, project=str(tmp_path), verbose=True, route="hard")
    lines = [x for record in captured for x in record.splitlines() if " 64x64 " in x]
    assert len(lines) == 1 and re.search(r"hard \(forced\), [\d.]+ms$", lines[0]), lines


def test_val_says_in_one_line_when_routing_does_not_pay(full_run, tiny_data, tmp_path, captured):
    """A one-epoch model's hard route is no better than its easy route: val says so, with what to do."""
    model = DynamicYOLO(full_run[0].ckpt_path)
    metrics = model.val(data=str(tiny_data), imgsz=64, batch=8, project=str(tmp_path), plots=False)
    easy, hard = (metrics.routes[r].mean_results()[3] for r in ("easy", "hard"))
    assert hard - easy < 0.005  # the premise: one epoch on 24 images
    warnings = [line for line in captured if "does not pay on this validation split" in line]
    assert len(warnings) == 1 and "\n" not in warnings[0] and "train longer" in warnings[0], captured[-5:]


def terminal_rows(text: str) -> int:
    """Return the rows `text` takes in a terminal: its lines, a progress bar's redraws (`\\r`) staying on their row."""
    return text.count("\n") + (not text.endswith("\n") and bool(text))


def test_default_training_run_prints_one_table_per_validation_and_no_repeats(tiny_data, tmp_path):
    """`dydet train data=tiny epochs=1` (stage 1, stage 2, calibration) prints 98 rows (333 before), here 80 with 2
    stage-2 epochs instead of 8 (3 rows each)."""
    dydet = str(Path(sys.executable).with_name("dydet"))
    argv = [dydet, "train", f"data={tiny_data}", "epochs=1", "stage2_epochs=2", "imgsz=64", "batch=8", "workers=0"]
    run = subprocess.run([*argv, f"project={tmp_path}", "plots=False"], capture_output=True, timeout=1800)
    out = (run.stdout + run.stderr).decode()  # bytes: text mode would turn each redraw's `\r` into a new line
    assert run.returncode == 0, out[-3000:]
    assert terminal_rows(out) <= 85, out
    assert "params  module" not in out  # the layer table: verbose=True only
    assert out.count("dy-yolo11n summary") == 1 and out.count("Ultralytics 8.") == 1
    assert "Per class" not in out
    # stage 1's final validation; stage 2's and the calibration's are reported by the trade-off over hard ratios
    assert out.count("Routed model (B)") == 1 and out.count("Speed: ") == 1
    assert out.count("Epoch    GPU_mem") == 2  # once per stage
    assert "Trade-off over hard ratios" in out and "final.pt" in out


def test_verbose_training_run_prints_the_layer_table_and_per_class_tables(tiny_data, tmp_path, tiny_train, captured):
    DynamicYOLO("dy-yolo11n.yaml").train(
        data=str(tiny_data), project=str(tmp_path), stage=1, verbose=True, **tiny_train
    )
    log = "\n".join(captured)
    assert "params  module" in log and "summary (fused)" in log
    assert all(f"Per class, {name}" in log for name in ("routed (", "easy route", "hard route")), log[-3000:]
