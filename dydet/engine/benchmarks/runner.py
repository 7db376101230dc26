"""Timing of the candidates, eager and (on CUDA) as CUDA graphs, interleaved; the `dydet benchmark` entry."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from ultralytics.utils import LOGGER

from dydet import cfg
from dydet.data.shortcuts import resolve_data
from dydet.engine.benchmarks.candidates import (
    _label,
    _prepare,
    benchmark_images,
    default_baselines,
    load_dynamic,
    load_static,
    parse_baselines,
    static_base_name,
)
from dydet.engine.benchmarks.result import EASY, HARD, ROUTED_EASY, BenchmarkResult, _dyn_name, _ratios, _row
from dydet.engine.benchmarks.splits import MIN_SCORE_GAP, _check_split, sequence_scores, split_thresholds, spread_router
from dydet.nn.tasks import DynamicDetectionModel
from dydet.utils.checkpoint import TRUST_ARG
from dydet.utils.cuda_graphs import DynamicModelGraphs, StaticModelGraph
from dydet.utils.errors import ArgumentError
from dydet.utils.files import make_run_dir, remove_if_unused
from dydet.utils.flops import mixed_gflops, route_gflops, static_gflops
from dydet.utils.timing import interleaved_medians


# ------------------------------------------------------------------------------------------------------------- timing
def _seq(fn: Callable[[torch.Tensor], Any], images: list[torch.Tensor]) -> Callable[[], None]:
    def run() -> None:
        for im in images:
            fn(im)

    return run


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
        LOGGER.info(
            "benchmark: the router gave the benchmark images nearly equal scores, too close to split them at every "
            "hard ratio, so a copy of the model got new random router weights for timing (costs are unchanged)"
        )
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
    kw = cfg.check_args("benchmark", kwargs)  # dydet/cfg/default.yaml: checks, and the benchmark's defaults
    quantize = kw.pop("quantize", None)
    half = kw.pop("half", None)
    if half is None and quantize is not None:
        half = str(quantize).lower() in {"16", "fp16", "half"}
    imgsz = kw.pop("imgsz")
    if isinstance(imgsz, (list, tuple)):
        imgsz = int(imgsz[0])
    project = Path(kw.pop("project", None) or Path.cwd() / "runs" / "benchmark")  # absolute: check_args
    # claimed before any timing: an unwritable folder or a name= leading out of project= fails at once, in one line
    save_dir, created = make_run_dir(project, kw.pop("name", None) or "speed", bool(kw.pop("exist_ok", False)))
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
    kw.pop(TRUST_ARG, None)  # applied when the model was loaded (check_args fills in its default)
    if kw:
        LOGGER.warning(f"dydet benchmark ignores {', '.join(sorted(kw))}")
    try:
        return benchmark_speed(model, save_dir=save_dir, **args)
    except BaseException:
        if created:
            remove_if_unused(save_dir, keep_results=False)
        raise
