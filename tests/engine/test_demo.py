"""The end of the demo job: routed predictions of a few validation images and the closing summary."""

from pathlib import Path

from dydet.data.synthetic import load_difficulty
from dydet.engine.demo import demo_images, demo_summary, finish_demo

ROWS = [
    {"hard_ratio": p, "mAP50": m50, "mAP50-95": m, "GFLOPs": g, "random_mAP50": r50, "random_mAP50-95": r}
    for p, m50, m, g, r50, r in (
        (0.0, 0.61, 0.42, 0.25, 0.61, 0.42),
        (0.5, 0.66, 0.46, 0.33, 0.64, 0.44),
        (1.0, 0.69, 0.48, 0.40, 0.69, 0.48),
    )
]


def test_demo_images_span_the_difficulty_range(tiny_data):
    images = demo_images(tiny_data)
    difficulty = load_difficulty(tiny_data, split="val")
    d = [difficulty[p.stem] for p in images]
    assert 3 <= len(images) <= 6 and all(p.is_file() and p.parent.name == "val" for p in images)
    assert d == sorted(d) and d[0] == min(difficulty.values()) and d[-1] == max(difficulty.values())


def test_demo_summary_names_metrics_and_files(tmp_path):
    text = demo_summary(ROWS, tmp_path / "demo-router", tmp_path / "demo-router" / "predictions", tmp_path / "demo")
    assert "easy route" in text and "mAP50 0.610" in text and "hard route" in text and "mAP50 0.690" in text
    assert "random routing 0.640 / 0.440" in text and "67% of the hard route's gain" in text
    for path in ("demo-router/predictions", "demo-router/calibration/tradeoff.png", "demo/results.png"):
        assert str(tmp_path / path) in text
    assert f"dydet predict model={tmp_path / 'demo-router' / 'weights' / 'final.pt'} source=" in text


def test_demo_summary_gives_no_share_of_a_gain_within_noise(tmp_path):
    rows = [{**r, "mAP50-95": 0.5881 if r["hard_ratio"] == 1.0 else 0.588} for r in ROWS]
    text = demo_summary(rows, tmp_path / "r", tmp_path / "p", tmp_path / "d")
    assert "of the hard route's gain" not in text and "too little for routing to matter" in text


def test_demo_summary_names_the_model_trained(tmp_path):
    text = demo_summary(ROWS, tmp_path / "r", tmp_path / "p", tmp_path / "d", model_name="dy-faster-rcnn-r18")
    assert "a dy-faster-rcnn-r18 trained on the embedded demo dataset" in text and "YOLO" not in text


def test_finish_demo_saves_routed_predictions(full_run, tiny_data):
    model, _, project = full_run
    folder = finish_demo(model, tiny_data, project / "full", imgsz=64)
    saved = sorted(folder.glob("*.jpg"))
    assert folder == Path(model.trainer.save_dir) / "predictions"
    assert {p.name for p in saved} == {p.name for p in demo_images(tiny_data)}


def test_the_demo_model_starts_from_the_shipped_statics(tmp_path):
    from dydet.engine.args import (
        DEMO_FINETUNE_DEFAULTS,
        DEMO_MODEL,
        DEMO_SCRATCH_DEFAULTS,
        DEMO_WEIGHTS,
        prepare_train_args,
    )

    args = prepare_train_args({"project": str(tmp_path)}, {}, model_yaml=DEMO_MODEL)
    assert args["pretrained"] == ",".join(map(str, DEMO_WEIGHTS))
    assert {k: args[k] for k in DEMO_FINETUNE_DEFAULTS} == DEMO_FINETUNE_DEFAULTS
    for given, model_yaml in (({"pretrained": False}, DEMO_MODEL), ({}, "dy-yolo11n.yaml"), ({}, None)):
        args = prepare_train_args({"project": str(tmp_path), **given}, {}, model_yaml=model_yaml)
        assert {k: args[k] for k in DEMO_SCRATCH_DEFAULTS} == DEMO_SCRATCH_DEFAULTS
        assert args.get("pretrained") in (None, False)


def test_the_shipped_statics_are_an_n_and_an_s_model_of_the_demo_classes():
    from dydet.data.synthetic import CLASS_NAMES
    from dydet.engine.args import DEMO_WEIGHTS
    from dydet.nn.transfer import read_pretrained

    easy, hard = read_pretrained(",".join(map(str, DEMO_WEIGHTS)))  # dydet's weights-only loader
    assert [m.yaml["scale"] for m in (easy, hard)] == ["n", "s"]
    assert easy.nc == hard.nc == len(CLASS_NAMES)


def test_dydet_train_without_a_model_builds_the_demo_model_only_on_the_demo_data():
    from dydet.cli import DEFAULT_MODEL, _default_model
    from dydet.engine.args import DEMO_MODEL

    assert _default_model("train", {}) == _default_model("train", {"data": "demo"}) == DEMO_MODEL
    assert _default_model("train", {"data": "tiny"}) == _default_model("tune", {}) == DEFAULT_MODEL
    assert _default_model("val", {}) is None
