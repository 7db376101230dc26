from pathlib import Path

import pytest

from dydet.data.shortcuts import is_embedded_name, resolve_data
from dydet.data.synthetic import make_dataset


@pytest.mark.parametrize("name", ["tiny", "tiny.yaml", "TINY", " tiny "])
def test_embedded_names_resolve_to_the_generated_yaml(name):
    path = resolve_data(name)
    assert path == str(make_dataset("tiny", verbose=False)) and Path(path).is_file()


@pytest.mark.parametrize("data", ["coco8.yaml", "data/tiny.yaml", None, 3, "tinyx"])
def test_other_data_is_left_alone(data):
    assert resolve_data(data) == data


def test_a_local_file_of_that_name_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo.yaml").write_text("train: x\n")
    assert not is_embedded_name("demo.yaml") and resolve_data("demo.yaml") == "demo.yaml"
    assert is_embedded_name("demo")


def test_train_args_take_the_shortcut(tmp_path):
    from dydet.engine.args import prepare_train_args

    args = prepare_train_args({"data": "tiny", "project": str(tmp_path)}, {})
    assert args["data"] == str(make_dataset("tiny", verbose=False))


def test_data_demo_gets_the_demo_training_defaults(tmp_path):
    from dydet.engine.args import DEMO_TRAIN_DEFAULTS, prepare_train_args

    args = prepare_train_args({"data": "demo", "epochs": 2, "project": str(tmp_path)}, {})
    assert args["epochs"] == 2 and args["imgsz"] == DEMO_TRAIN_DEFAULTS["imgsz"]
    assert args["data"] == str(make_dataset("demo", verbose=False))
    assert "imgsz" not in prepare_train_args({"data": "tiny", "project": str(tmp_path)}, {})


def test_demo_defaults_survive_the_cfg_check(tmp_path):
    """`check_args` fills dydet's own keys with None (stage2_epochs...): the demo's values must still apply."""
    from dydet.cfg import check_args
    from dydet.engine.args import DEMO_TRAIN_DEFAULTS, prepare_train_args

    args = prepare_train_args(check_args("train", {"data": "demo", "project": str(tmp_path)}), {})
    assert {k: args[k] for k in DEMO_TRAIN_DEFAULTS} == DEMO_TRAIN_DEFAULTS
    given = check_args("train", {"data": "demo", "stage2_epochs": 2, "project": str(tmp_path)})
    assert prepare_train_args(given, {})["stage2_epochs"] == 2


def test_no_data_trains_on_the_demo_with_its_defaults(tmp_path):
    from dydet.engine.args import DEMO_SCRATCH_DEFAULTS, prepare_train_args

    args = prepare_train_args({"project": str(tmp_path), "seed": 3}, {})  # seed= is training's: the data stay seed 0
    assert args["data"] == str(make_dataset("demo", verbose=False))
    assert args["epochs"] == DEMO_SCRATCH_DEFAULTS["epochs"]
    assert args["seed"] == 3 and "demo-seed0-" in args["data"]
    own = {"data": str(make_dataset("tiny", verbose=False))}  # a checkpoint trained on its own data keeps it
    assert prepare_train_args({"project": str(tmp_path)}, own).get("data") is None
