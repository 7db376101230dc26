"""Multi-GPU training hand-off, checked without a GPU.

With `device=0,1` Ultralytics' trainer does not train in-process: `generate_ddp_file` pickles the trainer *class*,
its args, the built model and the callbacks into a `.pt` file (with cloudpickle) and writes a script that each
`torch.distributed.run` worker executes: load that state, rebuild the trainer from the args, attach the model, train.
These tests run exactly that script in a fresh interpreter, stopping before `trainer.train()`, for both dydet
trainers.

cloudpickle is an Ultralytics DDP-only requirement that is not installed offline here; when it is missing, a stand-in
built on the standard pickler is used: it pickles classes and functions by import path exactly like cloudpickle does
for importable objects, stubs out Ultralytics' own lambdas (cloudpickle would pickle those by value), and fails on
any dydet lambda or closure, which dydet must not have (docs/METHOD.md, "Checkpoints").
"""

import json
import pickle
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import pytest

from dydet.models.yolo.train import DynamicTrainer
from dydet.models.yolo.train_router import RouterTrainer
from dydet.nn.tasks import DynamicDetectionModel

TRAIN_LINE = "    trainer.train()\n"

# Replaces `trainer.train()` in the generated script: report what the worker would train with, then stop.
CHECK = """\
    import json, os
    from dydet.nn.tasks import DynamicDetectionModel
    from ultralytics.utils import ONLINE
    m = trainer.model
    built = trainer.get_model(cfg="dy-yolo11n.yaml", weights=m if m.stage >= 1 else None, verbose=False)
    print("DDP-CHECK " + json.dumps({
        "trainer": f"{type(trainer).__module__}.{type(trainer).__qualname__}",
        "model": f"{type(m).__module__}.{type(m).__qualname__}",
        "model_is_dynamic": isinstance(m, DynamicDetectionModel),
        "stage": m.stage,
        "built": f"{type(built).__module__}.{type(built).__qualname__}",
        "built_is_dynamic": isinstance(built, DynamicDetectionModel),
        "built_stage": built.stage,
        "nc": trainer.data["nc"],
        "freeze": trainer.args.freeze,
        "n_layers": len(m.model),
        "save_dir": str(trainer.save_dir),
        "online": ONLINE,
        "yolo_offline": os.environ.get("YOLO_OFFLINE"),
    }))
"""


def _stand_in_cloudpickle() -> types.ModuleType:
    """A `cloudpickle` stand-in on the standard pickler (see the module docstring)."""

    class Pickler(pickle.Pickler):
        def reducer_override(self, obj):
            local = isinstance(obj, types.FunctionType) and "<" in obj.__qualname__  # lambda or closure
            if local and not obj.__module__.startswith("dydet"):
                return eval, ("lambda *args, **kwargs: None",)
            return NotImplemented

    module = types.ModuleType("cloudpickle")
    module.Pickler = Pickler
    module.dump = lambda obj, file, protocol=None: Pickler(file, protocol).dump(obj)
    return module


@pytest.fixture
def cloudpickle_available(monkeypatch):
    """Make `import cloudpickle` work: the real package if installed, else the stand-in."""
    try:
        import cloudpickle  # noqa: F401
    except ImportError:
        monkeypatch.setitem(sys.modules, "cloudpickle", _stand_in_cloudpickle())


@pytest.fixture(scope="module")
def stage1_model() -> DynamicDetectionModel:
    """A model marked as past stage 1 (its weights do not matter here), as stage-2 training needs."""
    model = DynamicDetectionModel("dy-yolo11n.yaml", nc=6, verbose=False)
    model.stage = 1
    return model


def _build_trainer(cls, tiny_data: Path, project: Path, stage1_model: DynamicDetectionModel):
    """Build the trainer and its model the way `Model.train` does before it calls `trainer.train()`."""
    overrides = {
        "data": str(tiny_data),
        "model": "dy-yolo11n.yaml",
        "project": str(project),
        "name": cls.__name__,
        "epochs": 1,
        "imgsz": 64,
        "batch": 8,
        "workers": 0,
        "device": "cpu",  # the worker cannot select CUDA devices here; everything else is as for device=0,1
        "plots": False,
    }
    trainer = cls(overrides=overrides)
    weights = stage1_model if cls is RouterTrainer else None
    trainer.model = trainer.get_model(cfg="dy-yolo11n.yaml", weights=weights, verbose=False)
    return trainer


def _pickled_globals(state_file: Path) -> bytes:
    """Return the pickle stream of a torch-saved `.pt` file (where class references are written by import path)."""
    with zipfile.ZipFile(state_file) as z:
        return z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))


def test_ddp_workers_rebuild_dydet_trainers(tiny_data, tmp_path, stage1_model, cloudpickle_available):
    from ultralytics.utils.dist import ddp_cleanup, generate_ddp_file

    expected = {
        DynamicTrainer: ("dydet.models.yolo.train", "DynamicTrainer", 1),
        RouterTrainer: ("dydet.models.yolo.train_router", "RouterTrainer", 2),
    }
    scripts, cleanups = [], []
    try:
        for cls, (module, name, _) in expected.items():
            trainer = _build_trainer(cls, tiny_data, tmp_path / "runs", stage1_model)
            file = Path(generate_ddp_file(trainer))
            cleanups.append((trainer, file))
            source = file.read_text()
            assert source.count(TRAIN_LINE) == 1, f"the DDP script template changed:\n{source}"
            state = _pickled_globals(file.with_suffix(".pt"))
            assert module.encode() in state and name.encode() in state, f"{name} is not pickled by import path"
            assert b"dydet.nn.tasks" in state and b"DynamicDetectionModel" in state
            script = tmp_path / f"ddp_{name}.py"
            script.write_text(source.replace(TRAIN_LINE, CHECK))
            scripts.append(script)

        # one fresh interpreter runs both workers' start-up, as `torch.distributed.run` would run each script
        runner = "import runpy, sys\nfor s in sys.argv[1:]:\n    runpy.run_path(s, run_name='__main__')\n"
        result = subprocess.run(
            [sys.executable, "-c", runner, *map(str, scripts)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
        reports = [json.loads(line[10:]) for line in result.stdout.splitlines() if line.startswith("DDP-CHECK ")]
        assert len(reports) == 2, result.stdout[-3000:]
    finally:
        for trainer, file in cleanups:
            ddp_cleanup(trainer, str(file))
    for cleanup in cleanups:
        assert not cleanup[1].exists() and not cleanup[1].with_suffix(".pt").exists()

    for report, (cls, (module, name, stage)) in zip(reports, expected.items()):
        assert report["trainer"] == f"{module}.{name}"
        assert report["model_is_dynamic"] and report["model"] == "dydet.nn.tasks.DynamicDetectionModel"
        assert report["built_is_dynamic"] and report["built"] == "dydet.nn.tasks.DynamicDetectionModel"
        assert report["stage"] == stage and report["built_stage"] == stage
        assert report["nc"] == 6
        assert report["save_dir"] == str(tmp_path / "runs" / name)
        if cls is RouterTrainer:  # stage 2 freezes every detector layer in the worker too
            assert report["freeze"] == report["n_layers"]
        assert report["online"] is False and report["yolo_offline"] == "1"
