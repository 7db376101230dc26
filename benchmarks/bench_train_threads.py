"""CPU training throughput, side by side: Ultralytics' torch thread count vs all cores, with and without workers.

Ultralytics' `select_device` sets `torch.set_num_threads(cores - 1)` on CPU and its trainer forces `workers=0`, so
on a 2-core machine a training step runs on one core. This script measures, in one process and in interleaved rounds
(the machine may be shared: only the ratios measured side by side mean something), the training throughput of the
real trainers (`DynamicTrainer` for stage 1, `RouterTrainer` for stage 2: data loading, forward, backward, optimizer
step and EMA, as in `BaseTrainer._do_train`) for each configuration `THREADSxWORKERS`, and prints images/s, CPU
seconds per image (this process and its dataloader workers) and each configuration's speed relative to the first.

Usage:
    python benchmarks/bench_train_threads.py [--configs 1x0,2x0,2x2,1x1] [--steps 12 --warmup 3 --rounds 3]
        [--imgsz 160 --batch 16 --model dy-yolo11n.yaml] [--project /tmp/bench_threads]

`1x0` with `1 = cores - 1` is what Ultralytics does on this 2-core machine; `--configs` takes `ulx0` for "Ultralytics'
count" on any machine and `allxW` for all usable cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import psutil
import torch

import dydet  # noqa: F401  (offline settings before ultralytics)
from dydet.data.synthetic import make_dataset
from dydet.models.yolo.train import DynamicTrainer
from dydet.models.yolo.train_router import ROUTER_DEFAULTS, ROUTER_FIXED, RouterTrainer
from dydet.utils.torch_utils import usable_cpu_cores

# Ultralytics' CPU thread count (cores - 1, at most 8); imported after dydet, which sets the offline environment.
from ultralytics.utils import NUM_THREADS  # noqa: E402  isort: skip
from ultralytics.utils.torch_utils import unwrap_model  # noqa: E402  isort: skip


def parse_configs(text: str) -> list[tuple[int, int]]:
    """Parse `THREADSxWORKERS,...` (`ul` = Ultralytics' thread count, `all` = all usable cores)."""
    out = []
    for item in text.split(","):
        t, w = item.strip().lower().split("x")
        threads = {"ul": NUM_THREADS, "all": usable_cpu_cores()}.get(t) or int(t)
        out.append((threads, int(w)))
    return out


def cpu_seconds(proc: psutil.Process) -> float:
    """User + system CPU seconds of this process and its live children (dataloader workers)."""
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def timed_steps(trainer, steps: int, warmup: int) -> tuple[float, float, int]:
    """Run `warmup + steps` training steps of a set-up trainer; return wall s, CPU s and images of the timed steps."""
    trainer._model_train()
    loader = iter(trainer.train_loader)
    proc = psutil.Process()
    images, t0, c0 = 0, 0.0, 0.0
    for i in range(warmup + steps):
        if i == warmup:
            t0, c0 = time.perf_counter(), cpu_seconds(proc)
        try:
            batch = next(loader)
        except StopIteration:
            loader = iter(trainer.train_loader)
            batch = next(loader)
        batch = trainer.preprocess_batch(batch)
        loss, trainer.loss_items = trainer.model(batch)
        loss.sum().backward()
        trainer.optimizer_step()
        if i >= warmup:
            images += batch["img"].shape[0]
    return time.perf_counter() - t0, cpu_seconds(proc) - c0, images


def make_trainer(stage: int, threads: int, workers: int, common: dict, stage1_model=None):
    """A stage-1 or stage-2 trainer set up for training (model, data loaders, optimizer), without running it."""
    if stage == 1:
        trainer = DynamicTrainer(overrides={**common, "threads": threads})
    else:
        router = {**common, **ROUTER_FIXED, "lr0": ROUTER_DEFAULTS["lr0"], "batch": common["batch"]}
        trainer = RouterTrainer(overrides={**router, "threads": threads})
        trainer.model = trainer.get_model(cfg=stage1_model.yaml, weights=stage1_model, verbose=False)
    trainer.args.workers = workers  # Ultralytics forces 0 on CPU in __init__; the loaders are built in _setup_train
    trainer._setup_train()
    return trainer


def close(trainer) -> None:
    """Shut down a trainer's dataloader workers."""
    for loader in (trainer.train_loader, trainer.test_loader):
        if hasattr(loader, "close"):
            loader.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="ulx0,allx0,allx2,1x1", help="THREADSxWORKERS, comma-separated")
    ap.add_argument("--model", default="dy-yolo11n.yaml")
    ap.add_argument("--imgsz", type=int, default=160)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=12, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps before each measurement")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved repetitions of every configuration")
    ap.add_argument("--stages", default="1,2")
    ap.add_argument("--project", default=None)
    args = ap.parse_args()

    configs = parse_configs(args.configs)
    stages = [int(s) for s in args.stages.split(",")]
    project = Path(args.project or tempfile.mkdtemp(prefix="bench_threads_")).resolve()
    data = make_dataset("demo")
    common = {
        "model": args.model,
        "data": str(data),
        "imgsz": args.imgsz,
        "batch": args.batch,
        "epochs": 1,
        "device": "cpu",
        "plots": False,
        "project": str(project),
        "exist_ok": True,
        "verbose": False,
    }
    print(f"usable cores {usable_cpu_cores()}, Ultralytics NUM_THREADS {NUM_THREADS}, torch {torch.__version__}")
    print(f"load average at start: {os.getloadavg()}")
    stage1_model = unwrap_model(make_trainer(1, NUM_THREADS, 0, {**common, "name": "s1"}).model).eval()
    stage1_model.stage = 1
    results: dict[tuple[int, int, int], list[tuple[float, float, int, float]]] = {}
    for r in range(args.rounds):
        for stage in stages:
            for threads, workers in configs:
                name = f"s{stage}-t{threads}-w{workers}"
                trainer = make_trainer(stage, threads, workers, {**common, "name": name}, stage1_model)
                assert torch.get_num_threads() == threads
                wall, cpu, n = timed_steps(trainer, args.steps, args.warmup)
                close(trainer)
                load = os.getloadavg()[0]
                results.setdefault((stage, threads, workers), []).append((wall, cpu, n, load))
                print(
                    f"round {r + 1} stage {stage} threads {threads} workers {workers}: {n / wall:6.2f} img/s, "
                    f"{cpu / n * 1000:6.1f} CPU ms/img, load {load:.2f}",
                    flush=True,
                )

    print(f"\nSummary (sum over {args.rounds} interleaved rounds of {args.steps} steps x batch {args.batch}):")
    print("| stage | threads | workers | img/s | CPU ms/img | vs first | load avg (1 min) |")
    print("|---|---|---|---|---|---|---|")
    for stage in stages:
        base = None
        for threads, workers in configs:
            rows = results[(stage, threads, workers)]
            wall, cpu, n = (sum(x[i] for x in rows) for i in range(3))
            speed = n / wall
            base = base or speed
            loads = [x[3] for x in rows]
            print(
                f"| {stage} | {threads} | {workers} | {speed:.2f} | {cpu / n * 1000:.1f} | {speed / base:.2f}x | "
                f"{min(loads):.1f}-{max(loads):.1f} |"
            )


if __name__ == "__main__":
    main()
