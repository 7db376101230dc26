import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ultralytics.nn.tasks import DetectionModel

from dydet import DynamicYOLO
from dydet.models.yolo.train import DynamicTrainer
from dydet.nn.checkpoint import load_checkpoint
from dydet.nn.tasks import DynamicDetectionModel

DYDET = str(Path(sys.executable).with_name("dydet"))
ROUTE_KEYS = [f"metrics/{m}({r})" for r in "EH" for m in ("precision", "recall", "mAP50", "mAP50-95")]


def test_api_stage_all_leaves_a_calibrated_final_checkpoint(full_run):
    model, metrics, project = full_run
    final = Path(model.ckpt_path)
    assert final.name == "final.pt" and final.is_file()
    loaded, _ = load_checkpoint(final)
    assert isinstance(loaded, DynamicDetectionModel) and loaded.stage == 2
    cal = loaded.calibration
    assert cal["n_images"] == 12 and cal["imgsz"] == 64 and len(cal["scores"]) == 12
    assert cal["gflops"]["hard"] > cal["gflops"]["easy"] > cal["gflops"]["router"] > 0
    assert 0 < loaded.threshold < 1
    stage1 = project / "full"
    for name in ("weights/best.pt", "weights/last.pt", "results.csv"):
        assert (stage1 / name).is_file(), name
    with open(stage1 / "results.csv") as f:
        header = next(csv.reader(f))
    for key in ("train/e_box_loss", "train/h_dfl_loss", "val/e_cls_loss", *ROUTE_KEYS):
        assert any(h.strip() == key for h in header), key
    stage2 = project / "full-router"
    with open(stage2 / "results.csv") as f:
        header = [h.strip() for h in next(csv.reader(f))]
    assert {"train/r_loss", "train/delta", "train/score", "train/hard"} <= set(header)
    assert (stage2 / "calibration" / "tradeoff.csv").is_file()
    assert (stage2 / "calibration" / "tradeoff.png").is_file()


def test_stage2_sees_images_as_inference_does(full_run):
    """Stage 1 augments; stage 2 trains the router on images exactly as inference sees them."""
    import yaml

    project = full_run[2]
    stage1, stage2 = (yaml.safe_load((project / n / "args.yaml").read_text()) for n in ("full", "full-router"))
    assert stage1["scale"] > 0 and stage1["hsv_v"] > 0 and stage1["translate"] > 0 and stage1["mosaic"] > 0
    assert stage1["fliplr"] > 0
    for key in ("scale", "translate", "hsv_h", "hsv_s", "hsv_v", "fliplr", "mosaic", "mixup", "degrees", "perspective"):
        assert stage2[key] == 0, key


def test_route_results_plot(full_run, tmp_path):
    from dydet.utils.plotting import plot_route_results

    csv_copy = tmp_path / "results.csv"
    csv_copy.write_bytes((full_run[2] / "full" / "results.csv").read_bytes())
    png = plot_route_results(csv_copy)
    assert png == tmp_path / "results.png" and png.stat().st_size > 10_000


def test_cli_stage1_then_val_reports_both_routes(tiny_data, tmp_path):
    train = [
        DYDET,
        "train",
        "model=dy-yolo11n.yaml",
        f"data={tiny_data}",
        "epochs=1",
        "imgsz=64",
        "batch=8",
        "workers=0",
        "--stage",
        "1",
        f"project={tmp_path}",
        "name=cli",
        "plots=False",
    ]
    out = subprocess.run(train, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    best = tmp_path / "cli" / "weights" / "best.pt"
    assert best.is_file()
    assert load_checkpoint(best)[0].stage == 1
    val = [DYDET, "val", f"model={best}", f"data={tiny_data}", "imgsz=64", "batch=8", f"project={tmp_path}"]
    out = subprocess.run(val, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    log = out.stdout + out.stderr
    assert "easy route" in log and "hard route" in log and "not calibrated" in log


def _static_checkpoint(path: Path, name: str = "yolo11n.yaml", nc: int = 6) -> DetectionModel:
    torch.manual_seed(3)
    static = DetectionModel(name, nc=nc, verbose=False)
    for m in static.modules():  # non-trivial BN statistics, so a missed buffer would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    torch.save({"model": static, "epoch": -1, "train_args": {}}, path)
    return static


def test_pretrained_single_model_initialises_both_routes(tiny_data, tmp_path):
    static = _static_checkpoint(tmp_path / "single.pt").eval()
    trainer = DynamicTrainer(overrides={"model": "dy-yolo11n.yaml", "data": str(tiny_data), "project": str(tmp_path)})
    trainer.data = {"nc": 6, "channels": 3, "names": {i: str(i) for i in range(6)}}
    weights, _ = load_checkpoint(tmp_path / "single.pt")
    model = trainer.get_model(cfg="dy-yolo11n.yaml", weights=weights, verbose=False).eval()
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        ref = static(x)[0]
        for route in ("easy", "hard"):
            torch.testing.assert_close(model(x, route=route)[0], ref, rtol=1e-4, atol=1e-4)
    cb = [m for m in model.model if type(m).__name__ == "CBLinear"]
    assert cb and all(torch.count_nonzero(m.conv.weight) == 0 for m in cb)


def test_pretrained_of_another_scale_is_refused(tmp_path):
    static = DetectionModel("yolo11s.yaml", nc=6, verbose=False)
    model = DynamicDetectionModel("dy-yolo11n.yaml", nc=6, verbose=False)
    with pytest.raises(ValueError, match="same base and scale"):
        model.load(static)


def test_stage2_changes_only_the_router(full_run, tiny_data, tmp_path, tiny_train):
    _, _, project = full_run
    stage1 = project / "full" / "weights" / "best.pt"
    before = load_checkpoint(stage1)[0].state_dict()
    model = DynamicYOLO(stage1)
    model.train(
        data=str(tiny_data),
        project=str(tmp_path),
        name="s2",
        stage=2,
        stage2_epochs=1,
        calibrate=False,
        stage2_lr=0.05,
        **{k: v for k, v in tiny_train.items() if k != "epochs"},
    )
    after = load_checkpoint(tmp_path / "s2-router" / "weights" / "last.pt")[0].state_dict()
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k].float(), after[k].float())}
    assert changed and all(k.startswith("router.") for k in changed), sorted(changed)[:5]
    assert any(k.startswith("model.") and "running_mean" in k for k in before)  # BN buffers were compared


def test_stage2_on_an_untrained_yaml_is_refused(tiny_data, tmp_path, tiny_train):
    with pytest.raises(ValueError, match="stage-1"):
        DynamicYOLO("dy-yolo11n.yaml").train(data=str(tiny_data), project=str(tmp_path), stage=2, **tiny_train)


def test_resume_continues_an_interrupted_run(tiny_data, tmp_path, tiny_train):
    model = DynamicYOLO("dy-yolo11n.yaml")

    def stop_after_first_epoch(trainer):
        if trainer.epoch == 0:
            raise KeyboardInterrupt

    model.add_callback("on_model_save", stop_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        model.train(data=str(tiny_data), project=str(tmp_path), name="r", stage=1, **{**tiny_train, "epochs": 2})
    last = tmp_path / "r" / "weights" / "last.pt"
    assert torch.load(last, weights_only=False)["epoch"] == 0
    resumed = DynamicYOLO(last)
    resumed.train(resume=True, stage=1)
    with open(tmp_path / "r" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(float(r["epoch"])) for r in rows] == [1, 2]


def test_cpu_training_fills_the_cores_with_threads_and_a_dataloader_worker(tiny_data, tmp_path, monkeypatch):
    from dydet.utils import torch_utils
    from dydet.utils.torch_utils import CPU_TRAIN_WORKERS, usable_cpu_cores

    common = {"model": "dy-yolo11n.yaml", "data": str(tiny_data), "device": "cpu", "imgsz": 64, "epochs": 1}
    before = torch.get_num_threads()
    try:
        for busy, workers in ((True, CPU_TRAIN_WORKERS), (False, 0)):  # Ultralytics alone: 0 workers, cores - 1
            load = usable_cpu_cores() + 1.0 if busy else 0.2
            monkeypatch.setattr(torch_utils.os, "getloadavg", lambda load=load: (load,) * 3)
            trainer = DynamicTrainer(overrides={**common, "project": str(tmp_path), "name": f"default-{busy}"})
            assert trainer.args.workers == workers
            assert torch.get_num_threads() == max(1, min(usable_cpu_cores() - workers, 8))
        trainer = DynamicTrainer(
            overrides={**common, "project": str(tmp_path), "name": "set", "threads": 3, "workers": 0}
        )
        assert torch.get_num_threads() == 3 and trainer.args.workers == 0
        assert "threads" not in vars(trainer.args)  # dydet's argument never reaches Ultralytics' args
    finally:
        torch.set_num_threads(before)
