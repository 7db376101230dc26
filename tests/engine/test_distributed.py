"""Data-parallel pieces in a real two-process gloo group (fast), and the stage plan handed to Ultralytics' workers.

The whole CLI under `torchrun` on the CPU is run by `test_distributed_slow.py`.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from dydet.engine.distributed import PLAN_EVENT
from dydet.models.rcnn.train import RCNNTrainer
from dydet.models.yolo.train import DynamicTrainer

# Each process of the group: Δ of the router objective, a run folder claimed by rank 0, a gathered tensor.
WORKER = textwrap.dedent(
    """
    import json, sys
    import torch
    import torch.distributed as dist
    from dydet.engine.distributed import claim_run_dir
    from dydet.utils.distributed import gather_cat
    from dydet.utils.files import make_run_dir
    from dydet.utils.loss import RouterObjective

    rank, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    objective = RouterObjective(threshold=0.5)
    l2 = torch.zeros(3 + rank)  # the two processes' batches differ in values and size
    l1 = torch.arange(3 + rank, dtype=torch.float) * (10 if rank else 1)
    score = torch.full((3 + rank,), 0.5, requires_grad=True)
    _, items = objective.per_image_objective(score, l1, l2, update=True)
    folder = str(make_run_dir(out, "run")[0]) if rank == 0 else None
    report = {
        "delta": float(items["delta"]),
        "history": objective.diffs.values.tolist(),
        "gathered": gather_cat(torch.tensor([rank] * (rank + 1))).tolist(),
        "folder": claim_run_dir(folder),
    }
    print("REPORT " + json.dumps(report))
    dist.destroy_process_group()
    """
)


def test_group_shares_delta_and_rank0_run_folder(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(r), str(port), str(tmp_path / "runs")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for r in (0, 1)
    ]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        reports += [__import__("json").loads(x[7:]) for x in out.splitlines() if x.startswith("REPORT ")]
    assert len(reports) == 2
    every = sorted([0.0, 1.0, 2.0] + [0.0, 10.0, 20.0, 30.0])  # all L1 - L2 of both processes
    expected = float(torch.tensor(every).median())  # 7 values: the middle one
    assert reports[0]["delta"] == reports[1]["delta"] == expected
    assert sorted(reports[0]["history"]) == sorted(reports[1]["history"]) == every
    assert reports[0]["gathered"] == reports[1]["gathered"] == [0, 1, 1]
    assert reports[0]["folder"] == reports[1]["folder"] == str((tmp_path / "runs" / "run").resolve())
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["run"]  # rank 1 claimed no folder of its own


@pytest.mark.parametrize(
    "trainer_class, cfg", [(DynamicTrainer, "dy-yolo11n.yaml"), (RCNNTrainer, "dy-faster-rcnn-r18.yaml")]
)
def test_spawned_workers_get_the_stage_plan(trainer_class, cfg, tiny_data, tmp_path, monkeypatch):
    """`device=0,1`: the DDP file Ultralytics writes carries the plan, and the worker's trainer (either family's)
    takes it, so the worker's checkpoints carry it and a resume finishes the plan."""
    import ultralytics.engine.trainer as base
    from ultralytics.utils.patches import torch_load

    try:
        import cloudpickle  # noqa: F401
    except ImportError:
        from tests.engine.test_ddp import _stand_in_cloudpickle

        monkeypatch.setitem(sys.modules, "cloudpickle", _stand_in_cloudpickle())
    overrides = dict(data=str(tiny_data), model=cfg, project=str(tmp_path), name="p", epochs=1, pretrained=False)
    overrides.update(imgsz=64, batch=8, workers=0, device="cpu", plots=False)
    trainer = trainer_class(overrides=overrides)
    trainer.model = trainer.get_model(cfg=cfg, verbose=False)
    plan = {"stage": "all", "router": {"stage2_epochs": 1}, "calibrate": True, "train_args": {"epochs": 1}}
    trainer.plan, trainer.ddp, trainer.world_size = plan, True, 2  # what `device=0,1` makes on a GPU machine
    workers = []

    def launch(cmd, check=True):  # instead of torch.distributed.run: re-create the trainer as the DDP file does
        state = torch_load(Path(cmd[-1]).with_suffix(".pt"), map_location="cpu")
        worker = state["trainer"](overrides=state["args"], _callbacks=state["callbacks"])
        worker.model = state["model"]
        workers.append(worker)

    monkeypatch.setattr(base.subprocess, "run", launch)
    trainer.train()
    assert len(workers) == 1 and type(workers[0]) is trainer_class
    assert workers[0].plan == plan
    assert workers[0]._checkpoint_extras()["plan"] == plan
    assert PLAN_EVENT not in workers[0].callbacks and PLAN_EVENT not in trainer.callbacks


def test_torchrun_device_choice(monkeypatch):
    from dydet.engine import distributed

    assert distributed.on_cpu("cpu") and not distributed.on_cpu("0,1") and not distributed.on_cpu("0")
    monkeypatch.setattr(distributed, "LOCAL_RANK", 1)
    assert distributed.gpu_index("2,3") == 3 and distributed.gpu_index("") == 1
