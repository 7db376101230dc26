"""What dydet prints: one line for stage-2 freezing, the route and score in each image's predict line."""

import re

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
