"""`dydet` training under `torchrun` on the CPU: two gloo processes, a narrow model, the tiny dataset (slow).

A first run of `stage=all` is stopped by an exception after stage 1's first epoch (after its checkpoint); a second
run resumes it with `resume=` and finishes stage 1, stage 2 and the calibration. Each process records what it
trained into `rank<N>.jsonl` through Ultralytics callbacks.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

RUN = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from ultralytics.utils import RANK
    from ultralytics.utils.torch_utils import unwrap_model
    from dydet import DynamicYOLO

    model_arg, out, stop = sys.argv[1], sys.argv[2], sys.argv[3] == "stop"
    train_args = json.loads(sys.argv[4])
    log = open(os.path.join(out, f"rank{RANK}.jsonl"), "a")

    def record(**entry):
        log.write(json.dumps(entry) + "\\n")
        log.flush()

    def checksum(params):
        return [float(p.detach().double().sum()) for p in params]

    def parts(trainer):
        net = unwrap_model(trainer.model)
        router = {id(p) for p in net.router.parameters()}
        params = list(net.parameters())
        return net, [p for p in params if id(p) in router], [p for p in params if id(p) not in router]

    def on_train_start(trainer):
        net, router, detector = parts(trainer)
        trainable = [p for p in net.parameters() if p.requires_grad]
        record(event="start", stage=net.stage, start_epoch=trainer.start_epoch, batch=trainer.train_loader.batch_size,
               only_router=all(any(p is r for r in router) for p in trainable),
               router=checksum(router), detector=checksum(detector))

    def on_train_batch_start(trainer):
        if not getattr(trainer, "_recorded", None) == trainer.epoch:
            trainer._recorded = trainer.epoch
            record(event="epoch", stage=unwrap_model(trainer.model).stage, epoch=trainer.epoch,
                   images=list(iter(trainer.train_loader.sampler)))

    def on_train_epoch_end(trainer):
        net, router, detector = parts(trainer)
        record(event="end", stage=net.stage, epoch=trainer.epoch, router=checksum(router), detector=checksum(detector))

    def on_fit_epoch_end(trainer):
        if stop and unwrap_model(trainer.model).stage == 1 and trainer.epoch == 0:
            raise SystemExit(3)  # interrupted after stage 1's first epoch and its checkpoint

    yolo = DynamicYOLO(model_arg)
    for name, fn in list(globals().items()):
        if name.startswith("on_"):
            yolo.add_callback(name, fn)
    yolo.train(**train_args)
    record(event="done", final=str(getattr(yolo, "ckpt_path", "")))
    """
)


def torchrun(tmp_path: Path, model: str, stop: bool, **args) -> subprocess.CompletedProcess:
    """Run the script above in two processes under `torch.distributed.run`."""
    script = tmp_path / "run.py"
    script.write_text(RUN)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += [str(script), model, str(tmp_path), "stop" if stop else "go", json.dumps(args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1500, cwd=tmp_path)


def read(tmp_path: Path, rank: int) -> list[dict]:
    """Return what one process recorded."""
    return [json.loads(x) for x in (tmp_path / f"rank{rank}.jsonl").read_text().splitlines()]


def test_two_processes_train_every_stage_and_resume(tiny_data, tmp_path):
    from conftest import narrow_yaml

    from dydet import DynamicYOLO

    yaml = narrow_yaml("dy-yolo11.yaml", tmp_path, width=0.125, depth_multiple=0.33, scales=None)
    common = dict(data=str(tiny_data), epochs=2, imgsz=64, batch=8, device="cpu", workers=0, plots=False)
    common.update(nbs=8, warmup_epochs=0)  # an optimizer step after every batch, at the full learning rate
    first = torchrun(tmp_path, str(yaml), True, **common, project=str(tmp_path / "runs"), name="d", stage2_epochs=1)
    assert first.returncode != 0 and "exitcode  : 3" in first.stderr, first.stderr[-4000:]
    last = tmp_path / "runs" / "d" / "weights" / "last.pt"
    assert last.exists()
    ranks = [read(tmp_path, r) for r in (0, 1)]
    # the first epoch: each process a disjoint half of the 24 training images, 4 of the 8 in a batch
    epochs = [[e for e in log if e["event"] == "epoch"] for log in ranks]
    assert [len(e) for e in epochs] == [1, 1]
    halves = [set(e[0]["images"]) for e in epochs]
    assert len(halves[0]) == len(halves[1]) == 12 and not halves[0] & halves[1]
    assert all(e["batch"] == 4 for log in ranks for e in log if e["event"] == "start")
    # gradients were averaged: both processes hold the same weights after the epoch's optimizer steps
    starts = [next(e for e in log if e["event"] == "start") for log in ranks]
    ends = [next(e for e in log if e["event"] == "end") for log in ranks]
    assert ends[0]["detector"] == ends[1]["detector"] and ends[0]["router"] == ends[1]["router"]
    assert ends[0]["detector"] != starts[0]["detector"]

    for r in (0, 1):
        (tmp_path / f"rank{r}.jsonl").unlink()
    second = torchrun(tmp_path, str(last), False, resume=str(last), device="cpu")
    assert second.returncode == 0, second.stderr[-4000:]
    assert "data-parallel training in 2 processes (gloo" in second.stdout + second.stderr
    ranks = [read(tmp_path, r) for r in (0, 1)]
    stages = [[(e["stage"], e["start_epoch"]) for e in log if e["event"] == "start"] for log in ranks]
    assert stages[0] == stages[1] == [(1, 1), (2, 0)]  # stage 1 resumed at its second epoch, then stage 2
    for log in ranks:  # stage 2 trains the router alone, in both processes
        start, end = [e for e in log if e.get("stage") == 2 and e["event"] in {"start", "end"}]
        assert start["only_router"] and start["detector"] == end["detector"] and start["router"] != end["router"]
    ends = [[e for e in log if e["event"] == "end" and e.get("stage") == 2][-1] for log in ranks]
    assert ends[0]["router"] == ends[1]["router"]

    finals = sorted((tmp_path / "runs").rglob("final.pt"))
    assert finals == [tmp_path / "runs" / "d-router" / "weights" / "final.pt"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["d", "d-router"]
    torch.load(finals[0], weights_only=True)
    results = DynamicYOLO(str(finals[0])).predict(str(Path(tiny_data).parent / "images" / "val"), hard_ratio=0.5)
    assert {r.route for r in results} <= {"easy", "hard"} and len(results) == 12


def test_ultralytics_spawn_trains_on_the_cpu_with_gloo(tiny_data, tmp_path, monkeypatch, capfd):
    """`device=0,1`'s own path: the launcher writes Ultralytics' DDP file, `torch.distributed.run` starts two workers
    that re-create the trainer from it and train in one group (gloo). Only the launcher is told it has two GPUs:
    Ultralytics counts no devices on the CPU and would not spawn."""
    from conftest import narrow_yaml

    from dydet.engine.checkpointing import run_info
    from dydet.models.yolo.train import DynamicTrainer
    from dydet.utils.checkpoint import load_raw

    try:
        import cloudpickle  # noqa: F401
    except ImportError:
        from tests.engine.test_ddp import _stand_in_cloudpickle

        monkeypatch.setitem(sys.modules, "cloudpickle", _stand_in_cloudpickle())
    yaml = str(narrow_yaml("dy-yolo11.yaml", tmp_path, width=0.125, depth_multiple=0.33, scales=None))
    overrides = dict(data=str(tiny_data), model=yaml, project=str(tmp_path / "runs"), name="s", epochs=1, imgsz=64)
    trainer = DynamicTrainer(overrides={**overrides, "batch": 8, "workers": 0, "device": "cpu", "plots": False})
    trainer.model = trainer.get_model(cfg=yaml, verbose=False)
    plan = {"stage": "1", "router": {}, "calibrate": False, "train_args": overrides}
    trainer.plan, trainer.ddp, trainer.world_size = plan, True, 2  # what device=0,1 makes on a two-GPU machine
    trainer.train()
    out = capfd.readouterr()
    assert "dydet: training in 2 processes, 4 images per process per step" in out.out + out.err
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["s"]
    ckpt = load_raw(tmp_path / "runs" / "s" / "weights" / "last.pt")
    assert run_info(ckpt)["plan"] == plan and ckpt["epoch"] == -1  # finished, written by the workers' rank 0
