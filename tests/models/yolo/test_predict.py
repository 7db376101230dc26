import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from ultralytics.engine.results import Results

from dydet.engine.results import ROUTE_COLORS, draw_route_banner, route_label
from dydet.models.yolo.model import DynamicYOLO
from dydet.models.yolo.predict import DynamicPredictor
from dydet.routing import RoutingSpec

ARGS = dict(imgsz=64, device="cpu", conf=0.01, verbose=False)


@pytest.fixture(scope="module")
def setup(full_run, tiny_data) -> tuple[Path, Path]:
    """(calibrated final checkpoint of the shared tiny training run, folder of the tiny dataset's val images)."""
    return Path(full_run[0].ckpt_path), tiny_data.parent / "images" / "val"


@pytest.fixture(scope="module")
def model(setup) -> DynamicYOLO:
    return DynamicYOLO(setup[0])


@pytest.fixture(scope="module")
def images(setup) -> list[Path]:
    return sorted(setup[1].glob("*.jpg"))


@pytest.fixture(scope="module")
def single_scores(model, images) -> list[float]:
    """Router scores of each val image run alone, preprocessed exactly as the predictor does."""
    model.predict(images[0], **ARGS)  # builds model.predictor
    predictor, scores = model.predictor, []
    net = predictor.dynamic_model()
    with torch.no_grad():
        for f in images:
            _, routing = net.routed(predictor.preprocess([cv2.imread(str(f))]), 0.5)
            scores.append(float(routing.score[0]))
    return scores


@pytest.fixture(scope="module")
def mixed_t(single_scores) -> float:
    """A threshold in the middle of the widest gap near the median score: half the images go each way."""
    s = sorted(single_scores)
    k = max(range(len(s) // 3, 2 * len(s) // 3 + 1), key=lambda i: s[i] - s[i - 1])
    return (s[k - 1] + s[k]) / 2


def closest_route(pixel: np.ndarray) -> str:
    return min(ROUTE_COLORS, key=lambda r: np.abs(pixel.astype(int) - ROUTE_COLORS[r]).sum())


def assert_banner(im: np.ndarray, route: str) -> None:
    pixel = im[1, 1]
    assert closest_route(pixel) == route
    assert np.abs(pixel.astype(int) - ROUTE_COLORS[route]).max() < 60, pixel


def test_results_carry_route_and_score(model, setup):
    results = model.predict(setup[1], batch=4, **ARGS)
    assert len(results) == 12
    for r in results:
        assert r.route in {"easy", "hard"}
        assert isinstance(r.score, float) and 0.0 < r.score < 1.0


def test_threshold_extremes_and_forced_route(model, setup):
    assert {r.route for r in model.predict(setup[1], batch=4, threshold=0.0, **ARGS)} == {"easy"}
    assert {r.route for r in model.predict(setup[1], batch=4, threshold=1.0, **ARGS)} == {"hard"}
    forced = model.predict(setup[1], batch=4, route="hard", **ARGS)
    assert {r.route for r in forced} == {"hard"} and {r.score for r in forced} == {None}


def test_batch_routes_match_one_by_one(model, setup, single_scores, mixed_t):
    expected = ["easy" if s >= mixed_t else "hard" for s in single_scores]
    assert set(expected) == {"easy", "hard"}
    results = model.predict(setup[1], batch=4, threshold=mixed_t, **ARGS)
    assert [r.route for r in results] == expected
    assert [r.score for r in results] == pytest.approx(single_scores, abs=1e-5)
    streamed = model.predict(setup[1], batch=4, threshold=mixed_t, stream=True, **ARGS)
    assert [r.route for r in streamed] == expected


def write_video(path: Path, frames: list[Path]) -> Path:
    im = cv2.imread(str(frames[0]))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (im.shape[1], im.shape[0]))
    for f in frames:
        writer.write(cv2.imread(str(f)))
    writer.release()
    return path


@pytest.mark.parametrize("kind", ["image", "folder", "glob", "video"])
def test_saved_images_carry_the_route_banner(model, setup, images, mixed_t, tmp_path, kind):
    folder = setup[1]
    source = {
        "image": images[0],
        "folder": folder,
        "glob": str(folder / "00002*.jpg"),
        "video": write_video(tmp_path / "clip.avi", images[:6]),
    }[kind]
    results = list(
        model.predict(
            source, batch=4, threshold=mixed_t, stream=True, save=True, project=str(tmp_path), name="p", **ARGS
        )
    )
    save_dir = tmp_path / "p"
    if kind == "video":
        saved = next(save_dir.glob("clip.*"))
        cap, frames = cv2.VideoCapture(str(saved)), []
        while (frame := cap.read())[0]:
            frames.append(frame[1])
        cap.release()
        assert len(frames) == len(results) == 6
        for frame, r in zip(frames, results):
            assert_banner(frame, r.route)
        return
    assert len(results) == {"image": 1, "folder": 12, "glob": 6}[kind]
    for r in results:
        saved = cv2.imread(str(save_dir / Path(r.path).name))
        assert_banner(saved, r.route)
        plain = Results.plot(r)  # the stock plot has no banner: the corner differs
        assert np.abs(saved[:4, :4].astype(int) - plain[:4, :4]).max() > 40
        assert np.abs(saved[:8].astype(int) - r.plot()[:8]).mean() < 10  # r.plot() has the banner the saved image has


def test_save_txt_is_the_stock_format(model, images, tmp_path):
    args = {**ARGS, "conf": 0.001}  # a one-epoch model: make sure there are boxes to write
    (r,) = model.predict(images[0], save_txt=True, save_conf=True, project=str(tmp_path), name="p", **args)
    assert len(r.boxes)
    written = (tmp_path / "p" / "labels" / f"{images[0].stem}.txt").read_text()
    r.save_txt(tmp_path / "stock.txt", save_conf=True)
    assert written == (tmp_path / "stock.txt").read_text()
    assert all(len(line.split()) == 6 for line in written.splitlines())


def test_results_keep_route_and_score_everywhere(model, images, tmp_path):
    (r,) = model.predict(images[0], **{**ARGS, "conf": 0.001})
    assert len(r.boxes) and r.route in {"easy", "hard"} and isinstance(r.score, float)
    for other in (r.cpu(), r.numpy(), r.to("cpu"), r.cpu().numpy(), r[0], r[:2], r.new()):
        assert (other.route, other.score) == (r.route, r.score)
    assert_banner(r.plot(), r.route)
    assert np.abs(r.plot()[:4, :4].astype(int) - Results.plot(r)[:4, :4]).max() > 40  # the stock plot has none
    rows = json.loads(r.to_json())
    assert rows and all(row["route"] == r.route and row["score"] == round(r.score, 5) for row in rows)
    assert {"route", "score"} <= set(r.to_df().columns) and "route,score" in r.to_csv().splitlines()[0]
    empty = r[:0]
    assert json.loads(empty.to_json()) == [{"route": r.route, "score": round(r.score, 5)}]
    r.save_txt(tmp_path / "labels" / "a.txt")
    r[:0].save_txt(tmp_path / "labels" / "b.txt")  # no detections: no label file, the route is still recorded
    rows = list(csv.DictReader((tmp_path / "labels" / "routes.csv").open()))
    assert rows == [{"file": f, "route": r.route, "score": f"{r.score:.5f}"} for f in ("a.txt", "b.txt")]


def test_predictor_used_directly(setup, images, tmp_path):
    predictor = DynamicPredictor(overrides={**ARGS, "model": str(setup[0]), "project": str(tmp_path), "save": True})
    (r,) = predictor(source=str(images[0]), routing=RoutingSpec.forced("easy"))  # the routing is an argument
    assert r.route == "easy" and r.score is None
    assert_banner(cv2.imread(str(Path(predictor.save_dir) / images[0].name)), "easy")


def test_banner_drawing():
    im = np.zeros((96, 96, 3), np.uint8)
    out = draw_route_banner(im, "hard", 0.3125)
    assert out is im and tuple(im[1, 1]) == ROUTE_COLORS["hard"]
    assert (im[:, -20:] == 0).all() and (im[-40:] == 0).all()  # a corner banner, not a bar across the image
    assert route_label("hard", 0.3125) == "hard, easiness 0.31" and route_label("easy", None) == "easy (forced)"
    read_only = np.zeros((640, 480, 3), np.uint8)
    read_only.flags.writeable = False
    out = draw_route_banner(read_only, "easy", 0.9)
    assert out is not read_only and tuple(out[1, 1]) == ROUTE_COLORS["easy"]
