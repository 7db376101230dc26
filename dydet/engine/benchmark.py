"""Speed of a dynamic model against the static models of its family, all measured side by side.

This is the cost half of "How we prove it works" (docs/METHOD.md): the easy route costs what the base model costs, and
the cost at a hard ratio is the linear mix of the two routes.

`benchmark_speed` times, in one run with interleaved repetitions and medians (`dydet.utils.timing`):

- batch-1 latency, per image over a fixed sequence of images, and batched throughput at `batch`, of
  the forced easy route, the forced hard route, each static baseline (built from its YAML with random weights and the
  model's class count, or loaded from a checkpoint), "routed all-easy" (router on, threshold 0) and the dynamic model
  at each hard ratio `p`;
- per-ratio thresholds that split the benchmark images exactly: `round(p * N)` of the N sequence images and
  `round(p * batch)` of the batch go hard (the router is given spread random weights, on a copy, when its scores on
  the benchmark images are too close to split, which changes no cost);
- on CUDA, fp16 in eager mode and with every route captured as a CUDA graph (`dydet.utils.cuda_graphs`), since eager
  batch-1 latency on a GPU is dominated by kernel launches.

It reports GFLOPs per route and per static model and the ratios that prove the method works: easy / static base,
dynamic(p) / linear mix of the two routes (batch 1 and batched), batched throughput at p=0.5 / all-hard throughput,
and the router's overhead (routed all-easy / forced easy). Results go to `speed.csv`, `speed.md` and `speed.png`.
"""

from __future__ import annotations

import csv
import os
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from ultralytics.utils import LOGGER

from dydet import cfg
from dydet.engine.routing import threshold_for_hard_ratio
from dydet.nn.tasks import DynamicDetectionModel
from dydet.utils.errors import ArgumentError, MissingFileError
from dydet.utils.flops import mixed_gflops
from dydet.utils.timing import interleaved_medians
from dydet.utils.torch_utils import fused_eval_copy

SCALES = ("n", "s", "m", "l", "x")
EASY, HARD, ROUTED_EASY = "easy route", "hard route", "routed all-easy"
# What a ratio would be if the method cost exactly what it should: the easy route is the base model, the router
# costs nothing, the dynamic model costs the linear mix of its routes. Ratios computed from other figures of the
# same run (hard / easy: their GFLOPs ratio; throughput: that of the linear mix) get their reference in `_ratios`.
REFERENCES: dict[str, float] = {
    "easy/base bs1": 1.0,
    "easy/base batch": 1.0,
    "easy/base gflops": 1.0,
    "router bs1": 1.0,
    "router batch": 1.0,
    "dyn/mix bs1": 1.0,
    "dyn/mix batch": 1.0,
}
MIN_SCORE_GAP = {torch.float32: 1e-4, torch.float16: 2e-3, torch.bfloat16: 2e-2}


# ------------------------------------------------------------------------------------------------------------ results
@dataclass
class BenchmarkResult:
    """Everything one `benchmark_speed` run measured.

    Attributes:
        meta (dict): Model, baselines, device, precision, image size, batch, sequence length, repetitions, threads.
        rows (list[dict]): One row per (mode, candidate): `mode` ('eager' | 'graph'), `name`, `kind` ('route',
            'routed', 'static', 'dynamic'), `gflops`, `bs1_ms` (per image), `batch_ms` (per batch), `batch_img_s`,
            and for dynamic rows `hard_ratio` (asked), `p_bs1` / `p_batch` (achieved), `threshold_bs1` /
            `threshold_batch`, `mix_bs1_ms` / `mix_batch_ms` (linear mix of the forced routes at the achieved
            ratio) and `dyn_over_mix_bs1` / `dyn_over_mix_batch`.
        ratios (list[dict]): `mode`, `key`, `name`, `value`, and `reference` (None where there is none): the value
            the ratio would have if the routes cost exactly what the method says (see `REFERENCES`).
        files (dict[str, Path]): Files written by `save`.
    """

    meta: dict[str, Any]
    rows: list[dict[str, Any]]
    ratios: list[dict[str, Any]]
    files: dict[str, Path] = field(default_factory=dict)

    def row(self, name: str, mode: str = "eager") -> dict[str, Any]:
        """Return the row of candidate `name` (e.g. 'easy route', 'yolo11n', 'dynamic p=0.50') in `mode`."""
        for r in self.rows:
            if r["name"] == name and r["mode"] == mode:
                return r
        raise KeyError(f"no row {name!r} in mode {mode!r}; rows: {sorted({r['name'] for r in self.rows})}")

    def ratio(self, name: str, mode: str = "eager") -> float:
        """Return the value of the ratio called `name` in `mode`."""
        for r in self.ratios:
            if r["name"] == name and r["mode"] == mode:
                return r["value"]
        raise KeyError(f"no ratio {name!r} in mode {mode!r}")

    @property
    def modes(self) -> list[str]:
        """Return the timing modes measured, in order ('eager', then 'graph' on CUDA)."""
        return list(dict.fromkeys(r["mode"] for r in self.rows))

    @property
    def deployed_mode(self) -> str:
        """Return the mode whose figures to read as the deployed cost: 'graph' when measured (CUDA), else 'eager'."""
        return "graph" if "graph" in self.modes else "eager"

    def _header(self) -> str:
        m = self.meta
        return (
            f"{m['model']} vs {', '.join(m['baselines']) or 'no baselines'} on {m['device_name']} ({m['precision']}, "
            f"{m['imgsz']} px, {m['reps']} interleaved reps; batch 1: mean over {m['seq']} images; "
            f"batch {m['batch']}; torch threads {m['threads']}"
            + (f"; load average {m['load_avg']:.1f} at start" if m.get("load_avg") is not None else "")
            + ")"
        )

    def _table_rows(self) -> tuple[list[str], list[list[str]]]:
        head = ["mode", "candidate", "GFLOPs", "bs1 ms/img", f"bs{self.meta['batch']} ms", "img/s", "p (bs1/batch)"]
        head += ["mix bs1 ms", "dyn/mix bs1", "dyn/mix batch"]
        out = []
        for r in self.rows:
            dyn = r["kind"] == "dynamic"
            out.append(
                [
                    r["mode"],
                    r["name"],
                    f"{r['gflops']:.3f}",
                    f"{r['bs1_ms']:.2f}",
                    f"{r['batch_ms']:.2f}",
                    f"{r['batch_img_s']:.1f}",
                    f"{r['p_bs1']:.2f}/{r['p_batch']:.2f}" if dyn else "",
                    f"{r['mix_bs1_ms']:.2f}" if dyn else "",
                    f"{r['dyn_over_mix_bs1']:.3f}" if dyn else "",
                    f"{r['dyn_over_mix_batch']:.3f}" if dyn else "",
                ]
            )
        return head, out

    def _ratio_rows(self) -> list[list[str]]:
        out = []
        for r in self.ratios:
            reference = "" if r.get("reference") is None else f"{r['reference']:.3f}"
            out.append([r["mode"], r["name"], f"{r['value']:.3f}", reference])
        return out

    def table(self) -> str:
        """Return the results as aligned plain text (header, candidates, ratios)."""

        def fmt(rows: list[list[str]]) -> list[str]:
            widths = [max(len(c) for c in col) for col in zip(*rows)]
            return [
                "  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows
            ]

        head, rows = self._table_rows()
        ratios = [["mode", "ratio", "value", "reference"], *self._ratio_rows()]
        return "\n".join([self._header(), "", *fmt([head, *rows]), "", *fmt(ratios)])

    def markdown(self) -> str:
        """Return the results as Markdown: a header line, the candidates table and the ratios table."""

        def md(head: list[str], rows: list[list[str]]) -> list[str]:
            lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            return lines + ["| " + " | ".join(r) + " |" for r in rows]

        head, rows = self._table_rows()
        ratios = md(["mode", "ratio", "value", "reference"], self._ratio_rows())
        cmd = self.meta.get("command")
        return "\n".join(
            [self._header() + ("" if not cmd else f"\n\nCommand: `{cmd}`"), "", *md(head, rows), "", *ratios]
        )

    def save(self, save_dir: str | Path) -> dict[str, Path]:
        """Write `speed.csv`, `speed.md` and `speed.png` into `save_dir` and return their paths."""
        save_dir = Path(save_dir)
        save_dir.mkdir(parents=True, exist_ok=True)
        keys = list(dict.fromkeys(k for r in self.rows for k in r))
        csv_path = save_dir / "speed.csv"
        with open(csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.rows)
        md_path = save_dir / "speed.md"
        md_path.write_text(self.markdown() + "\n")
        png_path = save_dir / "speed.png"
        plot_speed(self, png_path)
        self.files = {"csv": csv_path, "md": md_path, "png": png_path}
        LOGGER.info(f"Speed benchmark saved to {save_dir} (speed.csv, speed.md, speed.png)")
        return self.files


def plot_speed(result: BenchmarkResult, path: str | Path) -> Path:
    """Draw the speed figure: per timing mode, batch-1 latency bars and dynamic latency against the linear mix.

    Left panel: batch-1 latency of every fixed candidate (routes, routed all-easy, static models). Right panel: the
    dynamic model's latency against the achieved hard ratio with the linear mix of its two routes, at batch 1 and
    batched (per image).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = result.modes
    fig, axes = plt.subplots(len(modes), 2, figsize=(12, 4.2 * len(modes)), squeeze=False, tight_layout=True)
    batch = result.meta["batch"]
    for (bar_ax, line_ax), mode in zip(axes, modes):
        rows = [r for r in result.rows if r["mode"] == mode]
        fixed = [r for r in rows if r["kind"] != "dynamic"]
        colors = {"route": "tab:red", "routed": "tab:orange", "static": "tab:blue"}
        bars = bar_ax.bar(
            [r["name"] for r in fixed], [r["bs1_ms"] for r in fixed], color=[colors[r["kind"]] for r in fixed]
        )
        bar_ax.bar_label(bars, fmt="%.2f", fontsize=8)
        bar_ax.set_ylabel("batch-1 latency, ms / image")
        bar_ax.set_title(f"{mode}: batch-1 latency ({result.meta['precision']}, {result.meta['imgsz']} px)")
        bar_ax.tick_params(axis="x", labelrotation=20)
        dyn = sorted((r for r in rows if r["kind"] == "dynamic"), key=lambda r: r["hard_ratio"])
        if dyn:
            line_ax.plot([r["p_bs1"] for r in dyn], [r["bs1_ms"] for r in dyn], "ro-", label="dynamic, batch 1")
            line_ax.plot([r["p_bs1"] for r in dyn], [r["mix_bs1_ms"] for r in dyn], "r--", label="linear mix, batch 1")
            per_img = [r["batch_ms"] / batch for r in dyn]
            line_ax.plot([r["p_batch"] for r in dyn], per_img, "bs-", label=f"dynamic, batch {batch} (per image)")
            mix = [r["mix_batch_ms"] / batch for r in dyn]
            line_ax.plot([r["p_batch"] for r in dyn], mix, "b--", label=f"linear mix, batch {batch} (per image)")
        line_ax.set_xlabel("share of images sent to the hard route")
        line_ax.set_ylabel("ms / image")
        line_ax.set_title(f"{mode}: dynamic model vs linear mix of its routes")
        line_ax.legend(fontsize=8)
    fig.suptitle(f"{result.meta['model']} on {result.meta['device_name']}", fontsize=10)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


# ------------------------------------------------------------------------------------------------------------ inputs
def default_baselines(model: DynamicDetectionModel) -> tuple[str, ...]:
    """Return the static models a dynamic model competes with: its base at the same scale and the next scale up.

    E.g. `dy-yolo11n` -> ('yolo11n.yaml', 'yolo11s.yaml'); `dy-yolov8m` -> ('yolov8m.yaml', 'yolov8l.yaml'). A YAML
    whose `dynamic:` section lists `baselines` (e.g. dy-yolov7: yolov7 and yolov7x, as the paper compares) gets those.
    """
    if model.yaml.get("dynamic", {}).get("baselines"):
        return tuple(model.yaml["dynamic"]["baselines"])
    base, scale = model.yaml.get("dynamic", {}).get("base"), model.yaml.get("scale")
    if not base or scale not in SCALES:
        return ()
    i = SCALES.index(scale)
    return tuple(f"{base}{s}.yaml" for s in SCALES[i : i + 2])


def static_base_name(model: DynamicDetectionModel) -> str | None:
    """Return the name of the static model of the same base and scale (e.g. 'yolo11n'), or None if unknown."""
    base, scale = model.yaml.get("dynamic", {}).get("base"), model.yaml.get("scale")
    return f"{base}{scale}" if base and scale else base if base and not model.yaml.get("scales") else None


def parse_baselines(baselines: Any) -> list[Any]:
    """Normalise `baselines`: a comma-separated string, a sequence of names/paths/models, or 'none'/'' for none."""
    if baselines is None:
        return []
    if isinstance(baselines, (str, Path)):
        s = str(baselines).strip()
        return [] if s.lower() in {"", "none", "null", "false"} else [p.strip() for p in s.split(",") if p.strip()]
    if isinstance(baselines, nn.Module):
        return [baselines]
    return list(baselines)


def _label(spec: Any, model: nn.Module, i: int) -> str:
    """Name a baseline: its file stem, else its model YAML's stem, else 'static<i>'."""
    if isinstance(spec, (str, Path)):
        stem = Path(str(spec)).stem
        return stem if stem not in {"best", "last"} else f"{Path(str(spec)).parent.parent.name}-{stem}"
    yaml = getattr(model, "yaml", None)
    yaml_file = yaml.get("yaml_file") if isinstance(yaml, dict) else None
    return Path(yaml_file).stem if yaml_file else f"static{i}"


def load_static(spec: Any, nc: int) -> nn.Module:
    """Return a static detection model: built from a YAML (random weights, `nc` classes) or loaded from a `.pt`."""
    from ultralytics.nn.tasks import DetectionModel

    if isinstance(spec, DetectionModel):
        return spec
    if isinstance(getattr(spec, "model", None), nn.Module):  # an ultralytics.YOLO
        return spec.model
    if isinstance(spec, nn.Module):
        return spec
    if str(spec).endswith(".pt"):
        from dydet.utils.checkpoint import checkpoint_model, load_checkpoint_dict

        return checkpoint_model(load_checkpoint_dict(spec))
    if _built_by_dydet(spec):
        from dydet.nn.tasks import StaticDetectionModel

        return StaticDetectionModel(str(spec), nc=nc, verbose=False)
    return DetectionModel(str(spec), nc=nc, verbose=False)


def _built_by_dydet(spec: Any) -> bool:
    """Return True for a static model YAML (a path or a dydet-shipped name) that only dydet's parser builds."""
    import yaml

    from dydet.cfg import MODELS_DIR
    from dydet.nn.parse import needs_dydet_parser

    path = Path(str(spec))
    path = path if path.is_file() else MODELS_DIR / path.name
    if path.suffix not in {".yaml", ".yml"} or not path.is_file():
        return False
    d = yaml.safe_load(path.read_text())
    return isinstance(d, dict) and needs_dydet_parser({"backbone": [], "head": [], **d})


def load_dynamic(model: Any) -> DynamicDetectionModel:
    """Return the `DynamicDetectionModel` behind a `DynamicYOLO`, a model, a dydet YAML name or a checkpoint path."""
    if isinstance(model, DynamicDetectionModel):
        return model
    if isinstance(getattr(model, "model", None), DynamicDetectionModel):
        return model.model
    if isinstance(model, (str, Path)):
        if str(model).endswith(".pt"):
            from dydet.utils.checkpoint import checkpoint_model, load_checkpoint_dict, require_dynamic

            m = checkpoint_model(load_checkpoint_dict(model))
            require_dynamic(m, model)
            return m
        return DynamicDetectionModel(str(model), verbose=False)
    raise TypeError(f"cannot benchmark a {type(model).__name__}: pass a dydet model, DynamicYOLO, YAML or checkpoint")


def _prepare(model: nn.Module) -> nn.Module:
    """Return a fused fp32 eval-mode copy of a model on the CPU (the caller's model is left untouched)."""
    return fused_eval_copy(model).float().cpu()


def benchmark_images(n: int, imgsz: int, source: Any = None, seed: int = 0) -> torch.Tensor:
    """Return `n` benchmark images (n, 3, imgsz, imgsz) in [0, 1].

    Args:
        n (int): Number of images.
        imgsz (int): Square side.
        source (Any): None for random images of graded brightness (so that a router can tell them apart); a tensor;
            a folder or list of image files; or a data YAML (its validation images). Files are resized (not
            letterboxed: only shapes matter for timing) and cycled if fewer than `n`.
        seed (int): Seed of the random images.
    """
    if source is None:
        g = torch.Generator().manual_seed(seed)
        return torch.rand(n, 3, imgsz, imgsz, generator=g) * torch.linspace(0.05, 1.0, n).view(n, 1, 1, 1)
    if isinstance(source, torch.Tensor):
        x = source.float()
        x = x if x.shape[-2:] == (imgsz, imgsz) else nn.functional.interpolate(x, size=(imgsz, imgsz))
        return x[torch.arange(n) % len(x)]
    import cv2
    import numpy as np
    from ultralytics.data.utils import IMG_FORMATS

    files: list[Path] = []
    for s in [source] if isinstance(source, (str, Path)) else list(source):
        p = Path(s)
        if p.suffix in {".yaml", ".yml"}:
            from ultralytics.data.utils import check_det_dataset

            val = check_det_dataset(str(p))["val"]
            for v in [val] if isinstance(val, (str, Path)) else val:
                files += sorted(f for f in Path(v).rglob("*") if f.suffix[1:].lower() in IMG_FORMATS)
        elif p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix[1:].lower() in IMG_FORMATS)
        else:
            files.append(p)
    if not files:
        raise MissingFileError(f"no images found in {source!r} for the benchmark")
    ims = []
    for f in (files[i % len(files)] for i in range(n)):
        im = cv2.imread(str(f))
        if im is None:
            raise MissingFileError(f"cannot read image {f}")
        im = cv2.resize(im, (imgsz, imgsz), interpolation=cv2.INTER_LINEAR)[..., ::-1]
        ims.append(torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1).float() / 255)
    return torch.stack(ims)


# -------------------------------------------------------------------------------------------------------- thresholds
def sequence_scores(model: DynamicDetectionModel, images: torch.Tensor, batched: bool) -> torch.Tensor:
    """Router scores of `images`, one image at a time (as batch-1 routing sees them) or as one batch, on the CPU."""
    with torch.inference_mode():
        if batched:
            return model.router_scores(images).float().cpu()
        return torch.cat([model.router_scores(im[None]).float().cpu() for im in images])


def split_thresholds(scores: torch.Tensor, hard_ratios: Iterable[float]) -> list[tuple[float, float, int]]:
    """Return, per hard ratio `p`, a threshold that sends exactly `round(p * N)` of these N scores hard.

    Uses `threshold_for_hard_ratio` (the calibration's rule: halfway between the k-th and (k+1)-th lowest score).

    Returns:
        (list[tuple]): `(p, threshold, k)` per ratio.
    """
    calib = {"scores": scores.tolist()}
    return [(float(p), threshold_for_hard_ratio(calib, p), round(float(p) * len(scores))) for p in hard_ratios]


def split_gaps_ok(scores: torch.Tensor, hard_ratios: Iterable[float], min_gap: float) -> bool:
    """Return whether the scores are at least `min_gap` apart at every split the hard ratios make.

    At each `k = round(p * N)` with 0 < k < N, the k-th and (k+1)-th lowest scores must differ by `min_gap`, so that
    the halfway threshold splits the images exactly, also after rounding to a lower precision.
    """
    s, n = scores.float().sort().values, len(scores)
    ks = {round(float(p) * n) for p in hard_ratios} - {0, n}
    return all(float(s[k] - s[k - 1]) >= min_gap for k in ks)


def spread_router(
    model: DynamicDetectionModel,
    score_sets: Callable[[], list[torch.Tensor]],
    hard_ratios: Iterable[float],
    min_gap: float,
    attempts: int = 10,
) -> bool:
    """Re-initialise the router, from the benchmark images' own statistics, until their scores split exactly.

    Routing decisions only need scores that are apart at each split; router weights change no cost. Each of the
    router's convs in turn gets random weights, then is rescaled and shifted so that its outputs over the benchmark
    images have zero mean and unit standard deviation per channel (the last one: standard deviation 2, so scores
    spread over most of (0, 1) without saturating). Works in place: call it on a copy.

    Args:
        model (DynamicDetectionModel): The model (a copy) whose router to spread.
        score_sets (Callable): Runs the router on every benchmark image set and returns one score tensor per set.
        hard_ratios (Iterable[float]): The ratios whose splits must be exact.
        min_gap (float): Smallest score gap allowed at a split.
        attempts (int): Random restarts before giving up with a warning.

    Returns:
        (bool): Whether the router was changed.
    """
    hard_ratios = list(hard_ratios)
    if all(split_gaps_ok(s, hard_ratios, min_gap) for s in score_sets()):
        return False
    convs = [m for m in model.router.modules() if isinstance(m, nn.Conv2d)]
    for attempt in range(attempts):
        g = torch.Generator().manual_seed(attempt)
        for i, conv in enumerate(convs):
            outs: list[torch.Tensor] = []
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
                if conv.bias is not None:
                    conv.bias.zero_()
            hook = conv.register_forward_hook(lambda m, i, o, outs=outs: outs.append(o.detach().float().flatten(1)))
            try:
                score_sets()
            finally:
                hook.remove()
            out = torch.cat(outs)  # (images, channels)
            gain = (2.0 if i == len(convs) - 1 else 1.0) / out.std(0).clamp_min(1e-12)
            with torch.no_grad():
                conv.weight.mul_(gain.view(-1, *[1] * (conv.weight.ndim - 1)).to(conv.weight))
                if conv.bias is not None:
                    conv.bias.copy_((-out.mean(0) * gain).to(conv.bias))
        if all(split_gaps_ok(s, hard_ratios, min_gap) for s in score_sets()):
            return True
    LOGGER.warning("benchmark: router scores of the benchmark images stay close; some splits may not be exact")
    return True


# ------------------------------------------------------------------------------------------------------------- timing
def _seq(fn: Callable[[torch.Tensor], Any], images: list[torch.Tensor]) -> Callable[[], None]:
    def run() -> None:
        for im in images:
            fn(im)

    return run


def _check_split(name: str, got: int, want: int, n: int) -> None:
    if got != want:
        LOGGER.warning(f"{name}: {got}/{n} images went hard instead of {want}/{n} (scores too close at this precision)")


def benchmark_speed(
    model: Any,
    baselines: Any = None,
    imgsz: int | None = None,
    batch: int | None = None,
    hard_ratios: Sequence[float] | None = None,
    reps: int = 20,
    device: str | torch.device | None = None,
    half: bool | None = None,
    cuda_graphs: bool | None = None,
    save_dir: str | Path | None = None,
    progress: bool = True,
    seq: int = 10,
    images: Any = None,
    warmup: int = 3,
    threads: int | None = None,
    command: str | None = None,
) -> BenchmarkResult:
    """Time a dynamic model's routes and hard ratios against static baselines, side by side, and report the ratios.

    Args:
        model (Any): A `DynamicDetectionModel`, `DynamicYOLO`, dydet YAML name or checkpoint path. Not modified.
        baselines (Any): Static models: YAML names (random weights, the model's class count), `.pt` checkpoints or
            modules, as a sequence or a comma-separated string; None for `default_baselines(model)` (e.g. yolo11n and
            yolo11s for Dy-yolo11n); 'none' or () for none.
        imgsz (int, optional): Square image size (default: the benchmark's `imgsz` in `dydet/cfg/default.yaml`).
        batch (int, optional): Batch size of the throughput measurement (default: as `imgsz`).
        hard_ratios (Sequence[float], optional): Hard ratios of the dynamic model, each in [0, 1] (default:
            `hard_ratios` of `dydet/cfg/default.yaml`).
        reps (int): Interleaved timed repetitions (medians are reported).
        device (str | torch.device, optional): 'cpu', 'cuda', 'cuda:0' or an Ultralytics device string such as '0'
            (default: as `imgsz`).
        half (bool, optional): fp16; defaults to True on CUDA, False on CPU (where it is refused).
        cuda_graphs (bool, optional): Also time every candidate as CUDA graphs; defaults to True on CUDA.
        save_dir (str | Path, optional): Where to write speed.csv/.md/.png.
        progress (bool): Progress bars over the timing repetitions.
        seq (int): Length of the image sequence timed at batch 1 (per-image means are reported).
        images (Any): Benchmark image source for `benchmark_images` (default: random images of graded brightness).
        warmup (int): Untimed repetitions before timing.
        threads (int, optional): CPU threads for torch during the run (restored after); defaults to what Ultralytics'
            own CPU inference uses (`ultralytics.utils.NUM_THREADS`: cores - 1, at most 8).
        command (str, optional): The command line to record in the Markdown output.

    Returns:
        (BenchmarkResult): Rows, ratios and metadata (`.table()`, `.markdown()`, `.save()`).
    """
    from ultralytics.utils import NUM_THREADS
    from ultralytics.utils.torch_utils import select_device

    given = {"imgsz": imgsz, "batch": batch, "device": device, "hard_ratios": hard_ratios}
    args = cfg.check_args("benchmark", {k: v for k, v in given.items() if v is not None})
    imgsz, batch, device, hard_ratios = int(args["imgsz"]), int(args["batch"]), args["device"], args["hard_ratios"]
    old_threads = torch.get_num_threads()
    dev = select_device(device, verbose=False) if not isinstance(device, torch.device) else device
    torch.set_num_threads(old_threads)  # select_device changes it on the CPU; the run sets its own below
    cuda = dev.type == "cuda"
    half = cuda if half is None else bool(half)
    if half and not cuda:
        raise ArgumentError("half=True needs a CUDA device: fp16 convolutions are not supported on the CPU")
    cuda_graphs = cuda if cuda_graphs is None else bool(cuda_graphs)
    if cuda_graphs and not cuda:
        raise ArgumentError("cuda_graphs=True needs a CUDA device")
    hard_ratios = sorted({round(float(p), 4) for p in hard_ratios})
    if not hard_ratios:
        raise ArgumentError("hard_ratios=[] is invalid: give numbers in [0, 1]")
    if batch < 1 or seq < 1 or reps < 1:
        raise ArgumentError(f"batch, seq and reps must be >= 1, got batch={batch}, seq={seq}, reps={reps}")
    torch.set_num_threads(threads or NUM_THREADS)
    try:
        result = _measure(model, baselines, imgsz, batch, hard_ratios, reps, dev, half, cuda_graphs, seq, images,
                          warmup, progress, command)  # fmt: skip
    finally:
        torch.set_num_threads(old_threads)
    LOGGER.info("\n" + result.table())
    if save_dir is not None:
        result.save(save_dir)
    return result


def _measure(
    model: Any,
    baselines: Any,
    imgsz: int,
    batch: int,
    hard_ratios: list[float],
    reps: int,
    dev: torch.device,
    half: bool,
    cuda_graphs: bool,
    seq: int,
    images: Any,
    warmup: int,
    progress: bool,
    command: str | None,
) -> BenchmarkResult:
    """Build the candidates, choose the thresholds and time every mode (the body of `benchmark_speed`)."""
    from ultralytics.utils.torch_utils import get_cpu_info

    from dydet.utils.flops import route_gflops, static_gflops

    cuda = dev.type == "cuda"
    dtype = torch.float16 if half else torch.float32

    # ---- models: fused fp32 copies on the CPU for GFLOPs, then moved to the device
    src = load_dynamic(model)
    dyn = _prepare(src)
    nc = dyn.yaml["nc"]
    base_name = static_base_name(dyn)
    specs = default_baselines(dyn) if baselines is None else parse_baselines(baselines)
    statics = {}
    for i, spec in enumerate(specs):
        static = load_static(spec, nc)
        label = _label(spec, static, i)
        while label in statics or label in {EASY, HARD, ROUTED_EASY}:
            label += "'"
        statics[label] = _prepare(static)
    gflops = {
        EASY: route_gflops(dyn, "easy", imgsz),
        HARD: route_gflops(dyn, "hard", imgsz),
        "router": route_gflops(dyn, "router", imgsz),
    }
    gflops[ROUTED_EASY] = gflops[EASY] + gflops["router"]
    gflops.update({k: static_gflops(m, imgsz) for k, m in statics.items()})
    base_label = base_name if base_name in statics else (next(iter(statics)) if statics else None)

    # ---- images and exact per-ratio thresholds
    pool = benchmark_images(max(seq, batch), imgsz, images)
    seq_cpu, batch_cpu = pool[:seq], pool[:batch]
    dyn, statics = dyn.to(dev, dtype), {k: m.to(dev, dtype) for k, m in statics.items()}
    seq_ims = [im[None].to(dev, dtype) for im in seq_cpu]
    xb, x1 = batch_cpu.to(dev, dtype), seq_ims[0]
    spread = spread_router(
        dyn,
        lambda: [
            sequence_scores(dyn, torch.cat(seq_ims), batched=False),
            sequence_scores(dyn, xb, batched=True),
        ],
        hard_ratios,
        MIN_SCORE_GAP.get(dtype, 1e-4),
    )
    if spread:
        LOGGER.info("benchmark: router scores of the benchmark images were too close to split; spread router weights")
    cuts_seq = split_thresholds(sequence_scores(dyn, torch.cat(seq_ims), batched=False), hard_ratios)
    cuts_batch = split_thresholds(sequence_scores(dyn, xb, batched=True), hard_ratios)

    meta = {
        "model": Path(str(dyn.yaml.get("yaml_file", "dy-model"))).stem,
        "baselines": list(statics),
        "static_base": base_label,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if cuda else get_cpu_info(),
        "precision": "fp16" if half else "fp32",
        "imgsz": imgsz,
        "batch": batch,
        "seq": seq,
        "reps": reps,
        "threads": torch.get_num_threads(),
        "load_avg": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "router_spread": spread,
        "hard_ratios": hard_ratios,
        "command": command,
    }
    if cuda:
        meta["device_name"] = f"{meta['device_name']} (CUDA)"
    rows: list[dict[str, Any]] = []
    old_cudnn = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = cuda or old_cudnn
    try:
        modes = ["eager"] + (["graph"] if cuda_graphs else [])
        for mode in modes:
            rows += _time_mode(
                mode, dyn, statics, seq_ims, xb, x1, cuts_seq, cuts_batch, reps, warmup, dev, progress, gflops
            )
    finally:
        torch.backends.cudnn.benchmark = old_cudnn
    return BenchmarkResult(meta=meta, rows=rows, ratios=_ratios(rows, meta, gflops))


def _time_mode(
    mode: str,
    dyn: DynamicDetectionModel,
    statics: Mapping[str, nn.Module],
    seq_ims: list[torch.Tensor],
    xb: torch.Tensor,
    x1: torch.Tensor,
    cuts_seq: list[tuple[float, float, int]],
    cuts_batch: list[tuple[float, float, int]],
    reps: int,
    warmup: int,
    dev: torch.device,
    progress: bool,
    gflops: dict[str, float],
) -> list[dict[str, Any]]:
    """Time every candidate in one mode ('eager' or 'graph'), batch 1 then batched; return the rows."""
    n_seq, n_b = len(seq_ims), xb.shape[0]
    last: list[Any] = [None]  # routes of the last routed call, (B,) bool
    if mode == "graph":
        from dydet.utils.cuda_graphs import DynamicModelGraphs, StaticModelGraph

        LOGGER.info("benchmark: capturing CUDA graphs")
        g1, gb = DynamicModelGraphs(dyn, x1), DynamicModelGraphs(dyn, xb)
        for _, _, k in cuts_batch:  # the head graphs of every subset size the batched splits need
            for m in {k, n_b - k} - {0}:
                gb.prepare(m)
        s1 = {k: StaticModelGraph(m, x1) for k, m in statics.items()}
        sb = {k: StaticModelGraph(m, xb) for k, m in statics.items()}

        def forced(route: str, x: torch.Tensor) -> Any:
            return (g1 if x.shape[0] == 1 else gb).forced(route, x)

        def routed(x: torch.Tensor, t: float) -> Any:
            runner = g1 if x.shape[0] == 1 else gb
            out, routing = runner.routed(x, t)
            last[0] = routing.hard
            return out

        def static(name: str, x: torch.Tensor) -> Any:
            return (s1 if x.shape[0] == 1 else sb)[name](x)

        grad = torch.no_grad
    else:

        def forced(route: str, x: torch.Tensor) -> Any:
            return dyn(x, route=route)

        def routed(x: torch.Tensor, t: float) -> Any:
            out, routing = dyn.routed(x, t)
            last[0] = routing.hard
            return out

        def static(name: str, x: torch.Tensor) -> Any:
            return statics[name](x)

        grad = torch.inference_mode

    def hard_count() -> int:
        return int(last[0].sum())

    sync = dev if dev.type == "cuda" else None
    with grad():
        # achieved hard shares of the exact splits, checked in this mode and precision
        p_seq, p_batch = {}, {}
        for p, t, k in cuts_seq:
            hard = 0
            for im in seq_ims:
                routed(im, t)
                hard += hard_count()
            _check_split(f"{mode} batch-1 p={p}", hard, k, n_seq)
            p_seq[p] = hard / n_seq
        for p, t, k in cuts_batch:
            routed(xb, t)
            got = hard_count()
            _check_split(f"{mode} batch p={p}", got, k, n_b)
            p_batch[p] = got / n_b

        def candidates(xs: list[torch.Tensor] | torch.Tensor, cuts: list[tuple[float, float, int]]) -> dict:
            run = (lambda f: _seq(f, xs)) if isinstance(xs, list) else (lambda f: lambda: f(xs))
            c = {
                EASY: run(lambda x: forced("easy", x)),
                HARD: run(lambda x: forced("hard", x)),
                ROUTED_EASY: run(lambda x: routed(x, 0.0)),
            }
            c.update({name: run(lambda x, name=name: static(name, x)) for name in statics})
            c.update({_dyn_name(p): run(lambda x, t=t: routed(x, t)) for p, t, _ in cuts})
            return c

        LOGGER.info(f"benchmark [{mode}]: batch 1, {n_seq} images per repetition")
        one = interleaved_medians(
            candidates(seq_ims, cuts_seq), reps=reps, warmup=warmup, device=sync, progress=progress
        )
        LOGGER.info(f"benchmark [{mode}]: batch {n_b}")
        many = interleaved_medians(candidates(xb, cuts_batch), reps=reps, warmup=warmup, device=sync, progress=progress)

    rows = []
    for name in [EASY, HARD, ROUTED_EASY, *statics]:
        kind = "route" if name in (EASY, HARD) else "routed" if name == ROUTED_EASY else "static"
        rows.append(_row(mode, name, kind, gflops[name], one[name] / n_seq, many[name], n_b))
    for (p, t1, _), (_, tb, _) in zip(cuts_seq, cuts_batch):
        name = _dyn_name(p)
        g = mixed_gflops(gflops[EASY], gflops[HARD], gflops["router"], p)
        r = _row(mode, name, "dynamic", g, one[name] / n_seq, many[name], n_b)
        ps, pb = p_seq[p], p_batch[p]
        mix1 = (1 - ps) * one[EASY] / n_seq + ps * one[HARD] / n_seq
        mixb = (1 - pb) * many[EASY] + pb * many[HARD]
        r.update(
            hard_ratio=p,
            p_bs1=ps,
            p_batch=pb,
            threshold_bs1=t1,
            threshold_batch=tb,
            mix_bs1_ms=mix1,
            mix_batch_ms=mixb,
            dyn_over_mix_bs1=r["bs1_ms"] / mix1,
            dyn_over_mix_batch=r["batch_ms"] / mixb,
        )
        rows.append(r)
    return rows


def _dyn_name(p: float) -> str:
    return f"dynamic p={p:.2f}"


def _row(mode: str, name: str, kind: str, gflops: float, bs1_ms: float, batch_ms: float, n_b: int) -> dict[str, Any]:
    return {
        "mode": mode,
        "name": name,
        "kind": kind,
        "gflops": gflops,
        "bs1_ms": bs1_ms,
        "batch_ms": batch_ms,
        "batch_img_s": n_b * 1e3 / batch_ms,
    }


def _ratios(rows: list[dict[str, Any]], meta: dict[str, Any], gflops: dict[str, float]) -> list[dict]:
    """Compute the headline ratios of each mode, each with its reference value where there is one."""
    out = []
    b = meta["batch"]
    for mode in dict.fromkeys(r["mode"] for r in rows):
        by = {r["name"]: r for r in rows if r["mode"] == mode}

        def add(key: str, name: str, value: float, mode: str = mode, reference: float | None = None) -> None:
            reference = REFERENCES.get(key) if reference is None else reference
            out.append({"mode": mode, "key": key, "name": name, "value": value, "reference": reference})

        easy, hard, routed = by[EASY], by[HARD], by[ROUTED_EASY]
        base = meta["static_base"]
        if base:
            add("easy/base bs1", f"easy route / {base}, batch-1 latency", easy["bs1_ms"] / by[base]["bs1_ms"])
            add("easy/base batch", f"easy route / {base}, batch-{b} latency", easy["batch_ms"] / by[base]["batch_ms"])
            add("easy/base gflops", f"easy route / {base}, GFLOPs", gflops[EASY] / gflops[base])
        add("router bs1", "router overhead: routed all-easy / easy route, batch 1", routed["bs1_ms"] / easy["bs1_ms"])
        add(
            "router batch",
            f"router overhead: routed all-easy / easy route, batch {b}",
            routed["batch_ms"] / easy["batch_ms"],
        )
        add(
            "hard/easy bs1",
            "hard route / easy route, batch-1 latency (reference: GFLOPs ratio)",
            hard["bs1_ms"] / easy["bs1_ms"],
            reference=gflops[HARD] / gflops[EASY],
        )
        dyn = sorted((r for r in rows if r["mode"] == mode and r["kind"] == "dynamic"), key=lambda r: r["hard_ratio"])
        for r in dyn:
            add("dyn/mix bs1", f"dynamic p={r['p_bs1']:.2f} / linear mix, batch 1", r["dyn_over_mix_bs1"])
        for r in dyn:
            add("dyn/mix batch", f"dynamic p={r['p_batch']:.2f} / linear mix, batch {b}", r["dyn_over_mix_batch"])
        if dyn:
            mid = min(dyn, key=lambda r: abs(r["hard_ratio"] - 0.5))
            add(
                "tput p0.5/hard",
                f"batch-{b} throughput, dynamic p={mid['p_batch']:.2f} / all-hard (reference: linear mix)",
                mid["batch_img_s"] / hard["batch_img_s"],
                reference=hard["batch_ms"] / mid["mix_batch_ms"],
            )
    return out


def run_benchmark(model: Any, **kwargs: Any) -> BenchmarkResult:
    """`DynamicYOLO.benchmark` / `dydet benchmark`: map CLI-style arguments onto `benchmark_speed` and save results.

    Defaults and checks come from `dydet/cfg/default.yaml` (`dydet.cfg.check_args`), as for ``dydet benchmark``.
    Accepts `baselines` (comma-separated string or list; None: the model's family default), `hard_ratios`,
    `imgsz`, `batch`, `device`, `half` or `quantize` (16/'fp16' for fp16),
    `cuda_graphs`, `reps`, `seq`, `data` or `source` (benchmark images), `project` / `name` / `exist_ok` (results
    folder, default `runs/benchmark/speed`), `verbose` (progress bars). Other Ultralytics keys (e.g. `format`) are
    ignored with a warning.

    Returns:
        (BenchmarkResult): The result; its files are in `result.files`.
    """
    from ultralytics.utils.files import increment_path

    from dydet.data.shortcuts import resolve_data

    kw = cfg.check_args("benchmark", kwargs)  # dydet/cfg/default.yaml: checks, and the benchmark's defaults
    quantize = kw.pop("quantize", None)
    half = kw.pop("half", None)
    if half is None and quantize is not None:
        half = str(quantize).lower() in {"16", "fp16", "half"}
    imgsz = kw.pop("imgsz")
    if isinstance(imgsz, (list, tuple)):
        imgsz = int(imgsz[0])
    project = Path(kw.pop("project", None) or Path.cwd() / "runs" / "benchmark").resolve()
    save_dir = increment_path(project / (kw.pop("name", None) or "speed"), exist_ok=bool(kw.pop("exist_ok", False)))
    args = {
        "baselines": kw.pop("baselines", None),
        "hard_ratios": kw.pop("hard_ratios"),
        "imgsz": int(imgsz),
        "batch": int(kw.pop("batch")),
        "device": kw.pop("device"),
        "half": half,
        "cuda_graphs": kw.pop("cuda_graphs", None),
        "reps": int(kw.pop("reps", None) or 20),
        "seq": int(kw.pop("seq", None) or 10),
        "images": kw.pop("source", None) or resolve_data(kw.pop("data", None)),
        "progress": bool(kw.pop("verbose", True)),
        "command": kw.pop("command", None),
    }
    if args["command"] is None and Path(sys.argv[0]).name == "dydet":  # record the CLI call in speed.md
        args["command"] = shlex.join(["dydet", *sys.argv[1:]])
    kw.pop("data", None)
    if kw:
        LOGGER.warning(f"dydet benchmark ignores {', '.join(sorted(kw))}")
    return benchmark_speed(model, save_dir=save_dir, **args)


def dynamic_latency_by_ratio(result: BenchmarkResult, mode: str | None = None) -> dict[float, float]:
    """Return {asked hard ratio: batch-1 ms per image} of the dynamic rows (graph mode if measured, else eager)."""
    mode = mode or result.deployed_mode
    return {r["hard_ratio"]: r["bs1_ms"] for r in result.rows if r["mode"] == mode and r["kind"] == "dynamic"}


__all__ = (
    "BenchmarkResult",
    "benchmark_images",
    "benchmark_speed",
    "default_baselines",
    "dynamic_latency_by_ratio",
    "run_benchmark",
    "split_thresholds",
)
