"""Output folders are created atomically: two runs started together never share one."""

import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import dydet  # noqa: F401  (offline settings before ultralytics)
from dydet import DynamicYOLO
from dydet.utils.files import claim_save_dir, make_run_dir


def _together(n: int, fn) -> list:
    barrier = threading.Barrier(n)

    def start(_):
        barrier.wait()
        return fn()

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(start, range(n)))


def test_run_folders_are_created_atomically(tmp_path):
    folders = _together(8, lambda: make_run_dir(tmp_path, "same")[0])
    assert sorted(p.name for p in folders) == sorted(["same", *(f"same-{n}" for n in range(2, 9))])


def test_claimed_output_folders_are_distinct_and_exist(tmp_path):
    args = SimpleNamespace(project=str(tmp_path), name="pred", mode="predict", task="detect", exist_ok=False)
    folders = _together(6, lambda: claim_save_dir(args))
    assert len(set(folders)) == 6 and all(f.is_dir() and f.parent == tmp_path for f in folders)
    assert claim_save_dir(SimpleNamespace(**{**vars(args), "exist_ok": True})) == tmp_path / "pred"
    assert claim_save_dir(SimpleNamespace(**vars(args), save_dir=str(tmp_path / "given"))) == tmp_path / "given"


def test_predict_and_val_claim_their_folders(tmp_path, tiny_data):
    image = next((tiny_data.parent / "images" / "val").iterdir())
    for _ in range(2):  # two commands (a model's own later calls keep its predictor's folder, as in Ultralytics)
        model = DynamicYOLO("dy-yolo11n.yaml")
        model.predict(image, save=True, project=str(tmp_path), name="p", imgsz=64, verbose=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p", "p-2"]  # Ultralytics would pick p, p2
    model.predict(image, project=str(tmp_path), name="nosave", imgsz=64, verbose=False)
    assert not (tmp_path / "nosave").exists()  # nothing saved: no folder
    for _ in range(2):
        model.val(data=str(tiny_data), project=str(tmp_path), name="v", imgsz=64, batch=8, plots=False)
    assert (tmp_path / "v").is_dir() and (tmp_path / "v-2").is_dir()
