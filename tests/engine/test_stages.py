"""The stage plan: stage 2 of a run keeps the CPU set-up stage 1 chose."""

from pathlib import Path

import pytest
import torch

from dydet import DynamicYOLO


def test_stage_2_keeps_stage_1s_cpu_threads_and_workers(tiny_data, tiny_train, tmp_path, monkeypatch):
    """The load average read after stage 1 counts stage 1's own training: stage 2 must not switch set-up for it."""
    from dydet.models.yolo.train import DynamicTrainer
    from dydet.utils import torch_utils
    from dydet.utils.torch_utils import usable_cpu_cores

    readings = []

    def load_average():  # idle when stage 1 starts, busy (from stage 1 itself) afterwards
        readings.append(1)
        return (0.1 if len(readings) == 1 else usable_cpu_cores() + 2.0,) * 3

    seen = []
    init = DynamicTrainer.__init__

    def record(self, *args, **kwargs):
        init(self, *args, **kwargs)
        seen.append((type(self).__name__, self.cpu_threads, self.args.workers))

    monkeypatch.setattr(torch_utils.os, "getloadavg", load_average)
    monkeypatch.setattr(DynamicTrainer, "__init__", record)
    tiny_train.pop("workers")  # dydet's default decides
    before = torch.get_num_threads()
    try:
        DynamicYOLO("dy-yolo11n.yaml").train(
            data=str(tiny_data), project=str(tmp_path), name="r", stage2_epochs=1, calibrate=False, **tiny_train
        )
    finally:
        torch.set_num_threads(before)
    (first, t1, w1), (second, t2, w2) = seen
    assert (first, second) == ("DynamicTrainer", "RouterTrainer")
    assert (t1, w1) == (max(1, min(usable_cpu_cores(), 8)), 0)  # the idle choice
    assert (t2, w2) == (t1, w1)


class _Stop(Exception):
    pass


def test_pretrained_file_is_read_once_per_run(tiny_data, tiny_train, tmp_path, monkeypatch):
    """The front end reads `pretrained=` (and checks it) once and hands the weights on to the trainer."""
    import dydet.utils.checkpoint.read as read

    pre = tmp_path / "pre.pt"
    DynamicYOLO("dy-yolo11n.yaml").save(pre)
    reads, load = [], read._torch_load_weights_only

    def counting(path):
        reads.append(Path(path).resolve())
        return load(path)

    monkeypatch.setattr(read, "_torch_load_weights_only", counting)
    model = DynamicYOLO("dy-yolo11n.yaml")

    def stop(trainer):  # the model is set up (pretrained weights loaded): enough
        raise _Stop

    model.add_callback("on_pretrain_routine_end", stop)
    with pytest.raises(_Stop):
        model.train(data=str(tiny_data), pretrained=str(pre), stage=1, project=str(tmp_path / "runs"), **tiny_train)
    assert reads.count(pre.resolve()) == 1
