"""A non-editable wheel, installed outside the repository, carries everything dydet reads from its package.

Builds the wheel from a copy of the sources, installs it into a temporary virtual environment that borrows this
interpreter's site-packages (torch, Ultralytics, ...) but not its dydet, and runs ``dydet help``, ``dydet checks``, a
tiny ``dydet train`` and ``dydet track`` on a short generated video from a folder outside the repository.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import cv2
import numpy as np
import pytest

from dydet.data import make_dataset

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "dydet")


def run(cmd: list, cwd: Path, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def borrowed_site_dirs() -> list[str]:
    """Return this interpreter's site-packages folders (its own and those its .pth files add), not the repository."""
    dirs = [p for p in sys.path if Path(p).name in {"site-packages", "dist-packages"} and Path(p).is_dir()]
    return [p for p in dict.fromkeys(dirs) if Path(p).resolve() != REPO]


@pytest.mark.slow
def test_wheel_installs_and_trains_outside_the_repository(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        kwargs = {"ignore": shutil.ignore_patterns("__pycache__")} if (REPO / name).is_dir() else {}
        copy(REPO / name, src / name, **kwargs)
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", dist, src], cwd=tmp_path)
    (wheel,) = dist.glob("dydet-*.whl")

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    python = venv / "bin" / "python"
    purelib = Path(
        run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=tmp_path).stdout.strip()
    )
    (purelib / "_borrowed_site.pth").write_text("\n".join(borrowed_site_dirs()) + "\n")
    run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", wheel], cwd=tmp_path)

    work = tmp_path / "elsewhere"  # outside the repository: nothing can come from its cfg/ or dydet/
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    where = run([python, "-c", "import dydet.cfg as c; print(c.__file__)"], cwd=work, env=env).stdout.strip()
    package = Path(where).parent.parent
    assert package.is_relative_to(purelib), f"dydet imported from {where}, not from the installed wheel"
    shipped = ("cfg/default.yaml", "cfg/models/dy-yolo11.yaml", "cfg/models/dy-yolov8.yaml", "cfg/datasets/README.md")
    for rel in (*shipped, "assets/demo/yolo11n.pt", "assets/demo/yolo11s.pt"):  # the demo's static starts
        assert (package / rel).is_file(), f"{rel} is missing from the wheel"

    dydet = venv / "bin" / "dydet"
    out = run([dydet, "help"], cwd=work, env=env).stdout
    assert "hard_ratios=" in out and "threshold" in out
    assert "imgsz=320" in run([dydet, "benchmark", "help"], cwd=work, env=env).stdout  # from the wheel's default.yaml

    data = make_dataset("tiny", root=tmp_path / "datasets", verbose=False)
    project = tmp_path / "runs"
    args = ["model=dy-yolo11n.yaml", f"data={data}", "epochs=1", "imgsz=64", "batch=4", "workers=0", "device=cpu"]
    run([dydet, "train", *args, "stage2_epochs=1", f"project={project}", "name=t", "plots=False"], cwd=work, env=env)
    assert (project / "t-router" / "weights" / "final.pt").is_file()  # stage 1, stage 2 and calibration ran
    assert not (work / "runs").exists()

    checks = run([dydet, "checks"], cwd=work, env=env)
    assert "network:" in checks.stdout + checks.stderr and "dydet home:" in checks.stdout + checks.stderr
    video = tmp_path / "shapes.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    for i in range(4):  # a square moving right
        frame = np.full((64, 64, 3), 90, np.uint8)
        cv2.rectangle(frame, (8 + 4 * i, 20), (28 + 4 * i, 40), (200, 60, 40), -1)
        writer.write(frame)
    writer.release()
    final = project / "t-router" / "weights" / "final.pt"
    track = run(
        [dydet, "track", f"model={final}", f"source={video}", "imgsz=64", f"project={project}"], cwd=work, env=env
    )
    log = track.stdout + track.stderr
    assert log.count("video 1/1") == 4 and ("easy" in log or "hard" in log)  # every frame routed
    assert sysconfig.get_path("purelib") not in str(purelib)  # the test venv is its own environment
