"""Resume of every stage, and calibration alone (`stage=calibrate`)."""

import csv
import shutil
from pathlib import Path

import pytest
import torch

import dydet  # noqa: F401  (offline settings before ultralytics)
from dydet import DynamicYOLO
from dydet.nn.checkpoint import load_checkpoint


def _epochs(run: Path) -> list[int]:
    with open(run / "results.csv") as f:
        return [int(float(r["epoch"])) for r in csv.DictReader(f)]


def _interrupt(model: DynamicYOLO, trainer_name: str) -> None:
    def stop(trainer):
        if type(trainer).__name__ == trainer_name and trainer.epoch == 0:
            raise KeyboardInterrupt

    model.add_callback("on_model_save", stop)


def test_calibrate_alone(full_run, tmp_path):
    _, _, project = full_run
    best = tmp_path / "run" / "weights" / "best.pt"
    best.parent.mkdir(parents=True)
    shutil.copy(project / "full-router" / "weights" / "best.pt", best)
    calibration = DynamicYOLO(str(best)).train(stage="calibrate", batch=8)
    assert (tmp_path / "run" / "calibration").is_dir()
    final = best.with_name("final.pt")
    loaded, _ = load_checkpoint(final)
    assert loaded.calibration["n_images"] == calibration["n_images"] == 12


def test_calibrate_needs_a_trained_router(full_run):
    _, _, project = full_run
    with pytest.raises(ValueError, match="calibration needs a trained router"):
        DynamicYOLO(str(project / "full" / "weights" / "best.pt")).train(stage="calibrate")


def test_finished_checkpoint_has_nothing_to_resume(full_run):
    _, _, project = full_run
    with pytest.raises(ValueError, match=r"finished stage-1 checkpoint.*stage=2"):
        DynamicYOLO(str(project / "full" / "weights" / "last.pt")).train(resume=True)


@pytest.mark.slow
def test_resume_stage1_of_stage_all_goes_on_with_stage2_and_calibration(tiny_data, tmp_path, tiny_train, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative runs/ folder here would mean a fallback to defaults
    model = DynamicYOLO("dy-yolo11n.yaml")
    _interrupt(model, "DynamicTrainer")
    project = tmp_path / "p"
    with pytest.raises(KeyboardInterrupt):
        model.train(data=str(tiny_data), project=str(project), name="r", stage2_epochs=1, **{**tiny_train, "epochs": 2})
    DynamicYOLO(str(project / "r" / "weights" / "last.pt")).train(resume=True)
    assert _epochs(project / "r") == [1, 2]
    final, _ = load_checkpoint(project / "r-router" / "weights" / "final.pt")
    assert final.stage == 2 and final.calibration["n_images"] == 12
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_resume_stage2_continues_router_training(tiny_data, tmp_path, tiny_train):
    model = DynamicYOLO("dy-yolo11n.yaml")
    _interrupt(model, "RouterTrainer")
    with pytest.raises(KeyboardInterrupt):
        model.train(data=str(tiny_data), project=str(tmp_path), name="s", stage2_epochs=2, **tiny_train)
    last = tmp_path / "s-router" / "weights" / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["dydet"]["stage"] == 2 and ckpt["dydet"]["router_median"]["count"] > 0
    DynamicYOLO(str(last)).train(resume=True)
    assert _epochs(tmp_path / "s-router") == [1, 2]
    final, _ = load_checkpoint(tmp_path / "s-router" / "weights" / "final.pt")
    assert final.stage == 2 and final.calibration is not None


def test_resume_keeps_the_runs_dataloader_workers(tiny_data, tmp_path, tiny_train):
    """A resumed CPU run keeps its own worker count (another draws other augmentations) unless resume sets one."""
    from dydet.models.yolo.train import DynamicTrainer

    model = DynamicYOLO("dy-yolo11n.yaml")
    _interrupt(model, "DynamicTrainer")
    with pytest.raises(KeyboardInterrupt):
        model.train(data=str(tiny_data), project=str(tmp_path), name="w", stage=1, **{**tiny_train, "epochs": 2})
    last = str(tmp_path / "w" / "weights" / "last.pt")
    assert DynamicTrainer(overrides={"model": last, "resume": last}).args.workers == 0  # dydet's default is 1
    assert DynamicTrainer(overrides={"model": last, "resume": last, "workers": 1}).args.workers == 1
