"""The demo recipe over several training seeds: does routing pay on every one?

Runs `dydet train seed=N` (the README's main job: no `data=`, the demo defaults) for each seed as a user would, from
the command line, then reads each run's calibration (`<name>-router/calibration/tradeoff.csv`) and predicts the demo
data with the trained router (`<name>-router/weights/final.pt`, `threshold=0.5`). One row per seed, plus the mean and
the minimum:

- easy route (hard ratio 0) and hard route (hard ratio 1): mAP50 and mAP50-95, and hard - easy (mAP50-95);
- the router at a 50/50 split against random routing (mAP50-95);
- the router's share of the oracle's margin over random routing, (router - random) / (oracle - random), at hard
  ratios 0.3, 0.5 and 0.7;
- Spearman's rank correlation of the router's easiness score with the generator's difficulty on the validation split
  (negative: clean images score easy, cluttered ones hard);
- the share of validation and training images that `threshold=0.5` sends hard;
- wall and CPU seconds (user + system, of the `dydet train` process and its dataloader workers) of each run.

The table is printed and written as `demo_seeds.csv` and `demo_seeds.md` into the project folder.

Usage:
    python benchmarks/demo_seeds.py                                   # seeds 0 1 2, project runs/demo_seeds
    python benchmarks/demo_seeds.py --seeds 0 1 2 --project $PWD/runs/demo_seeds --threads 1 --workers 1
    python benchmarks/demo_seeds.py --project $PWD/runs/demo_seeds --no-train   # only re-read finished runs
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

COLUMNS = (
    "seed",
    "easy_mAP50",
    "easy_mAP50-95",
    "hard_mAP50",
    "hard_mAP50-95",
    "hard-easy",
    "router@0.5",
    "random@0.5",
    "router-random@0.5",
    "oracle_share@0.3",
    "oracle_share@0.5",
    "oracle_share@0.7",
    "spearman_val",
    "hard_share_val",
    "hard_share_train",
    "wall_s",
    "cpu_s",
)
TARGETS = (  # the demo's targets: (column, comparison, bound)
    ("easy_mAP50", ">=", 0.5),
    ("hard-easy", ">=", 0.03),
    ("router-random@0.5", ">=", 0.008),
    ("spearman_val", "<=", -0.3),
)


def dydet_executable() -> str:
    """Return the `dydet` command of this Python's environment (else the one on PATH)."""
    here = Path(sys.executable).with_name("dydet")
    found = str(here) if here.exists() else shutil.which("dydet")
    if not found:
        raise SystemExit("no `dydet` command found: install dydet into this environment (make install)")
    return found


def train(seed: int, args: argparse.Namespace) -> subprocess.Popen:
    """Start `dydet train` for one seed, its output going to `<project>/seed<N>.log`."""
    cmd = [dydet_executable(), "train", f"seed={seed}", f"project={args.project}", f"name=seed{seed}", "exist_ok=True"]
    cmd += [f"threads={args.threads}"] if args.threads is not None else []
    cmd += [f"workers={args.workers}"] if args.workers is not None else []
    print(" ".join(cmd), flush=True)
    with open(args.project / f"seed{seed}.log", "w") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def run_all(args: argparse.Namespace) -> dict[int, tuple[float, float]]:
    """Train every seed (`--jobs` runs at a time) and return `{seed: (wall s, CPU s)}`."""
    pending, running, times = list(args.seeds), {}, {}
    while pending or running:
        while pending and len(running) < args.jobs:
            seed = pending.pop(0)
            proc = train(seed, args)
            running[proc.pid] = (seed, proc, time.perf_counter())
        pid, status, usage = os.wait4(-1, 0)  # per-child usage: the CPU seconds of that run and its reaped workers
        if pid not in running:
            continue
        seed, proc, t0 = running.pop(pid)
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        wall, cpu = time.perf_counter() - t0, usage.ru_utime + usage.ru_stime
        print(
            f"seed {seed}: exit {code}, wall {wall:.0f} s, CPU {cpu:.0f} s, load {os.getloadavg()[0]:.1f}", flush=True
        )
        if code != 0:
            raise SystemExit(f"dydet train seed={seed} failed (exit {code}): see {args.project / f'seed{seed}.log'}")
        times[seed] = (wall, cpu)
    return times


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation: Pearson's on the ranks, tied values sharing their mean rank."""

    def ranks(a: np.ndarray) -> np.ndarray:
        _, inverse, counts = np.unique(np.asarray(a, float), return_inverse=True, return_counts=True)
        ends = np.cumsum(counts)
        return ((ends - counts + ends - 1) / 2)[inverse]

    return float(np.corrcoef(ranks(x), ranks(y))[0, 1])


def router_scores(weights: Path, files: list[str]) -> np.ndarray:
    """Predict `files` with `threshold=0.5` and return each image's router (easiness) score."""
    from dydet import DynamicYOLO

    model = DynamicYOLO(weights)
    return np.array([r.score for r in model.predict(files, threshold=0.5, stream=True, verbose=False, batch=16)])


def tradeoff_figures(tradeoff_csv: Path) -> dict[str, float]:
    """The routes' and the router's figures of one run, from its calibration's `tradeoff.csv`."""
    with open(tradeoff_csv, newline="") as f:
        rows = {round(float(r["hard_ratio"]), 2): {k: float(v) for k, v in r.items()} for r in csv.DictReader(f)}
    easy, hard, half = rows[0.0], rows[1.0], rows[0.5]

    def share(p: float) -> float:
        r = rows[p]
        margin = r["oracle_mAP50-95"] - r["random_mAP50-95"]
        return (r["mAP50-95"] - r["random_mAP50-95"]) / margin if margin > 0 else float("nan")

    return {
        "easy_mAP50": easy["mAP50"],
        "easy_mAP50-95": easy["mAP50-95"],
        "hard_mAP50": hard["mAP50"],
        "hard_mAP50-95": hard["mAP50-95"],
        "hard-easy": hard["mAP50-95"] - easy["mAP50-95"],
        "router@0.5": half["mAP50-95"],
        "random@0.5": half["random_mAP50-95"],
        "router-random@0.5": half["mAP50-95"] - half["random_mAP50-95"],
        "oracle_share@0.3": share(0.3),
        "oracle_share@0.5": share(0.5),
        "oracle_share@0.7": share(0.7),
    }


def analyse(seed: int, args: argparse.Namespace, times: tuple[float, float] | None) -> dict[str, Any]:
    """One row of `COLUMNS`: a seed's trade-off figures, and its router's scores on the demo data's images."""
    import yaml

    from dydet.data.synthetic import load_difficulty

    router_dir = args.project / f"seed{seed}-router"
    out = {"seed": seed, **tradeoff_figures(router_dir / "calibration" / "tradeoff.csv")}
    data_yaml = Path(yaml.safe_load((router_dir / "args.yaml").read_text())["data"])
    data = yaml.safe_load(data_yaml.read_text())
    root = Path(data.get("path") or data_yaml.parent)
    weights = router_dir / "weights" / "final.pt"
    for split in ("val", "train"):
        difficulty = load_difficulty(data_yaml, split)
        files = sorted(str(p) for p in (root / data[split]).iterdir() if p.stem in difficulty)
        scores = router_scores(weights, files)
        out[f"hard_share_{split}"] = float(np.mean(scores < 0.5))
        if split == "val":
            out["spearman_val"] = spearman(scores, np.array([difficulty[Path(p).stem] for p in files]))
    out["wall_s"], out["cpu_s"] = times or (float("nan"), float("nan"))
    return out


def summary_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The mean and the minimum over seeds of every column."""
    table = np.array([[r[c] for c in COLUMNS[1:]] for r in rows], float)
    return [
        {"seed": "mean", **dict(zip(COLUMNS[1:], np.nanmean(table, 0)))},
        {"seed": "min", **dict(zip(COLUMNS[1:], np.nanmin(table, 0)))},
    ]


def fmt(column: str, value: Any) -> str:
    """One table cell."""
    if isinstance(value, str) or column == "seed":
        return str(value)
    if column in {"wall_s", "cpu_s"}:
        return f"{value:.0f}"
    if column.startswith(("oracle_share", "hard_share")):
        return f"{value:.0%}"
    return f"{value:+.4f}" if column in {"hard-easy", "router-random@0.5"} else f"{value:.4f}"


def write(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """Write `demo_seeds.csv` and `demo_seeds.md` into the project and return the Markdown table."""
    with open(args.project / "demo_seeds.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(fmt(c, r[c]) for c in COLUMNS) + " |" for r in rows]
    seeds = [r for r in rows if not isinstance(r["seed"], str)]
    lines.append("")
    for column, op, bound in TARGETS:
        ok = all((r[column] >= bound) if op == ">=" else (r[column] <= bound) for r in seeds)
        lines.append(f"- {column} {op} {bound} on every seed: {'met' if ok else 'NOT met'}")
    md = "\n".join(lines) + "\n"
    (args.project / "demo_seeds.md").write_text(md)
    return md


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (the data stay seed 0)")
    ap.add_argument("--project", type=Path, default=Path.cwd() / "runs" / "demo_seeds", help="folder of the runs")
    ap.add_argument("--threads", type=int, default=None, help="passed as threads= (default: dydet's choice)")
    ap.add_argument("--workers", type=int, default=None, help="passed as workers= (default: dydet's choice)")
    ap.add_argument(
        "--jobs", type=int, default=1, help="runs at a time (1: wall times as on an otherwise idle machine)"
    )
    ap.add_argument("--no-train", action="store_true", help="only read the runs already in --project")
    args = ap.parse_args()
    args.project = args.project.expanduser().resolve()
    args.project.mkdir(parents=True, exist_ok=True)

    times = {} if args.no_train else run_all(args)
    if args.no_train and (args.project / "demo_seeds.csv").exists():  # keep the times measured when they trained
        with open(args.project / "demo_seeds.csv", newline="") as f:
            times = {
                int(r["seed"]): (float(r["wall_s"]), float(r["cpu_s"]))
                for r in csv.DictReader(f)
                if r["seed"].isdigit()
            }
    rows = [analyse(s, args, times.get(s)) for s in args.seeds]
    print(write(rows + summary_rows(rows), args))


if __name__ == "__main__":
    main()
