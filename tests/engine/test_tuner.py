"""`DynamicYOLO.tune`: Ultralytics' evolution with every trial a dydet stage-1 training (never a static model)."""

import json

import pytest
import yaml

from dydet import DynamicYOLO
from dydet.nn.checkpoint import load_checkpoint
from dydet.nn.tasks import DynamicDetectionModel


def test_tune_refuses_ray():
    with pytest.raises(ValueError, match="use_ray"):
        DynamicYOLO("dy-yolo11n.yaml").tune(use_ray=True)


@pytest.mark.slow
def test_tune_two_tiny_trials_train_dydet_models(tiny_data, tmp_path, tiny_train):
    model = DynamicYOLO("dy-yolo11n.yaml")
    best = model.tune(data=str(tiny_data), iterations=2, project=str(tmp_path), name="tune", **tiny_train)
    tune_dir = tmp_path / "tune"
    records = [json.loads(line) for line in (tune_dir / "tune_results.ndjson").read_text().splitlines()]
    assert [r["iteration"] for r in records] == [1, 2]
    assert records[0]["hyperparameters"] != records[1]["hyperparameters"]
    assert best["iteration"] in {1, 2} and best["fitness"] == max(r["fitness"] for r in records)
    metrics = next(iter(best["datasets"].values()))
    assert "metrics/mAP50-95(E)" in metrics and "metrics/mAP50-95(H)" in metrics  # dydet's validator ran
    loaded, ckpt = load_checkpoint(tune_dir / "weights" / "best.pt")  # dydet's weights-only checkpoint format
    assert isinstance(loaded, DynamicDetectionModel) and loaded.stage == 1
    assert ckpt["train_metrics"]["fitness"] == pytest.approx(best["fitness"], abs=1e-5)  # fitness is the trainer's
    trial = yaml.safe_load((tune_dir / f"trial{best['iteration']}" / "args.yaml").read_text())
    assert trial["lr0"] == pytest.approx(best["hyperparameters"]["lr0"])  # the trial trained with its mutation
    assert (tune_dir / "best_hyperparameters.yaml").is_file()
    assert not (tmp_path / "runs").exists()  # nothing outside the user's project
