"""Crash-safe checkpoints and resume: a training process killed (SIGKILL) while it saves leaves loadable checkpoints,
and a resumed run reproduces the uninterrupted one."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import dydet  # noqa: F401  (offline settings before ultralytics)
from dydet import DynamicYOLO
from dydet.nn.checkpoint import load_checkpoint

DYDET = str(Path(sys.executable).with_name("dydet"))
# nbs=batch: an optimizer step every batch. Ultralytics restarts gradient accumulation on resume (its step counter
# is a local of the training loop), so a window of accumulated batches cut by the interruption is not replayed.
TRAIN = {
    "imgsz": 64,
    "batch": 8,
    "nbs": 8,
    "workers": 0,
    "device": "cpu",
    "plots": False,
    "seed": 0,
    "deterministic": True,
}


def _wait_for_save(weights: Path, proc: subprocess.Popen, timeout: float) -> str:
    """Poll `weights` until a checkpoint is being written over an existing `last.pt` (a new temp file appears, or a
    .pt changes); return why. Temp files left by earlier kills are ignored."""
    stale = {p.name for p in weights.glob(".*.tmp")} if weights.is_dir() else set()
    seen = {p.name: p.stat().st_mtime_ns for p in weights.glob("*.pt")} if weights.is_dir() else {}
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        try:
            names = os.listdir(weights)
        except FileNotFoundError:
            continue
        if "last.pt" in names and any(n.endswith(".tmp") and n not in stale for n in names):
            return "temp file"
        for n in names:
            if n.endswith(".pt"):
                try:
                    mtime = (weights / n).stat().st_mtime_ns
                except FileNotFoundError:
                    continue
                if seen.get(n, mtime) != mtime:
                    return f"{n} changed"
                seen[n] = mtime
        stale |= {n for n in names if n.endswith(".tmp")} if "last.pt" not in names else set()
    return "timeout"


@pytest.mark.slow
def test_kill_while_saving_leaves_loadable_checkpoints(tiny_data, tmp_path):
    run = tmp_path / "runs" / "k"
    weights = run / "weights"
    args = [f"data={tiny_data}", f"project={run.parent}", "name=k", "exist_ok=True", "stage=1", "epochs=200"]
    args += ["save_period=1", *(f"{k}={v}" for k, v in {**TRAIN, "imgsz": 32}.items())]
    kills = []
    for attempt in range(6):
        resume = weights / "last.pt"
        had_checkpoint = resume.is_file()
        cmd = [DYDET, "train", *((f"model={resume}", "resume=True") if had_checkpoint else args)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
        try:
            why = _wait_for_save(weights, proc, timeout=240)
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=60)
        kills.append((why, had_checkpoint))
        for pt in sorted(weights.glob("*.pt")):  # every checkpoint left is whole: weights-only readable and loadable
            torch.load(pt, weights_only=True)
            assert load_checkpoint(pt)[0].stage == 1
        # a kill during the very first save may leave none yet (the old file is "no file"), never a broken one
        assert resume.is_file() or not had_checkpoint, f"kill {attempt} ({why}) lost last.pt"
    assert any(why != "timeout" and had for why, had in kills), kills  # killed mid-save over an existing last.pt


def _results(run: Path) -> list[dict[str, float]]:
    with open(run / "results.csv") as f:
        return [{k.strip(): float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.mark.slow
def test_resumed_run_reproduces_the_uninterrupted_run(tiny_data, tmp_path):
    epochs = 4
    full = DynamicYOLO("dy-yolo11n.yaml")
    full.train(data=str(tiny_data), project=str(tmp_path), name="full", stage=1, epochs=epochs, **TRAIN)

    cut = DynamicYOLO("dy-yolo11n.yaml")

    def stop_after_second_epoch(trainer):
        if trainer.epoch == 1:
            raise KeyboardInterrupt

    cut.add_callback("on_model_save", stop_after_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        cut.train(data=str(tiny_data), project=str(tmp_path), name="cut", stage=1, epochs=epochs, **TRAIN)
    DynamicYOLO(str(tmp_path / "cut" / "weights" / "last.pt")).train(resume=True)

    a, b = _results(tmp_path / "full"), _results(tmp_path / "cut")
    assert [r["epoch"] for r in b] == [r["epoch"] for r in a] == list(range(1, epochs + 1))
    for ra, rb in zip(a[2:], b[2:]):  # the epochs after the resume: same batches, same augmentation, same losses
        for key in ("train/e_box_loss", "train/h_box_loss", "train/e_cls_loss", "train/h_cls_loss"):
            assert rb[key] == pytest.approx(ra[key], rel=2e-2, abs=1e-3), (key, ra["epoch"])
