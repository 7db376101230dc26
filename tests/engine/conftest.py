"""Shared, module-scoped tiny training runs for the engine tests (each trains in seconds on the tiny dataset)."""

from pathlib import Path

import pytest

from dydet import DynamicYOLO
from dydet.data.synthetic import make_dataset

TINY_TRAIN = {"epochs": 1, "imgsz": 64, "batch": 8, "workers": 0, "device": "cpu", "plots": False}


@pytest.fixture
def tiny_train() -> dict:
    return dict(TINY_TRAIN)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    return make_dataset("tiny", root=tmp_path_factory.mktemp("datasets"), verbose=False)


@pytest.fixture(scope="session")
def full_run(tiny_data, tmp_path_factory):
    """Stage 1 + stage 2 + calibration on the tiny dataset through the Python API."""
    project = tmp_path_factory.mktemp("runs")
    model = DynamicYOLO("dy-yolo11n.yaml")
    metrics = model.train(data=str(tiny_data), project=str(project), name="full", stage2_epochs=1, **TINY_TRAIN)
    return model, metrics, project
