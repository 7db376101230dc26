"""PyTorch eager vs ONNX Runtime vs OpenVINO on the CPU, batch 1: easy route, hard route and hard ratio 0.5.

Exports the model as split graphs in both formats to a temporary directory, then times every runtime side by side
with interleaved repetitions and medians in one run (`dydet.utils.timing.interleaved_medians`), each routed by its
own router graph:
  * easy:  threshold 0, every image easy (router + easy graph; PyTorch: B1 + router + H1)
  * hard:  threshold 1, every image hard (router + hard graph; PyTorch: B1 + router + B2 + H2)
  * p=0.5: two images per call at batch 1, one scoring above and one below the threshold between them, so the router
           sends one easy and one hard: the per-image cost of a stream with hard ratio 0.5 (reported per image)
Prints the medians in ms and the ratios to PyTorch, after checking that the three runtimes route alike and agree on
the outputs. The model has random weights (the speed of a route does not depend on them), or the trained ones of
`--weights`.

With `--int8 DATA` (a data YAML whose validation images calibrate), two int8 runtimes join: the OpenVINO export of
`dydet export format=openvino quantize=8` (NNCF) and, for comparison, the ONNX graphs quantized with ONNX Runtime's
static quantization (QDQ, per-channel int8 Conv weights, uint8 activations, calibrated on the same images), which
dydet does not ship. Each int8 runtime is routed at the midpoint of its own two router scores, as its calibration
would move the threshold; the fp32 runtimes must route alike, the int8 ones are reported.

All runtimes get one thread by default: on a shared machine multi-threaded kernels collapse under oversubscription
(see bench_onnx.py), which would compare the machine's load rather than the runtimes. `--threads 0` keeps each
library's default.

Usage:
    python benchmarks/bench_runtimes.py [--model dy-yolo11n.yaml | --weights final.pt] [--imgsz 320] [--reps 60]
        [--threads 1] [--bf16] [--int8 data.yaml]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import torch

import dydet  # noqa: F401  (offline settings before ultralytics)
from dydet.engine.exporter import export_onnx, export_openvino
from dydet.engine.quantize import export_openvino_int8
from dydet.nn.backends.runtime import load_export
from dydet.nn.tasks import DynamicDetectionModel
from dydet.utils.timing import interleaved_medians

RUNTIMES = ("torch", "onnx", "openvino")
LABELS = {
    "torch": "PyTorch",
    "onnx": "ONNX Runtime",
    "openvino": "OpenVINO",
    "openvino_bf16": "OpenVINO bf16",
    "openvino_int8": "OpenVINO int8 (NNCF)",
    "onnx_int8": "ONNX Runtime int8 (static QDQ)",
}


def ort_int8(fp32, out: Path, images: list, threads: int):
    """Quantize an ONNX export's three graphs with ONNX Runtime static quantization on real inputs; load the copy."""
    import shutil

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    feeds = {g: [] for g in fp32.graphs}
    for x in images:
        _, tensors = fp32.run_router(x)
        for g in feeds:
            feeds[g].append({n: tensors[n] for n in fp32.graphs[g]["inputs"]})

    class Reader(CalibrationDataReader):
        def __init__(self, items):
            self.items = iter(items)

        def get_next(self):
            return next(self.items, None)

    out.mkdir(parents=True)
    for g, spec in fp32.graphs.items():
        pre = out / f"{g}.pre.onnx"
        quant_pre_process(str(fp32.export_dir / spec["file"]), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(out / spec["file"]),
            Reader(feeds[g]),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["Conv"],  # the convolutions only: the head's decoding and the router stay float
        )
        pre.unlink()
    shutil.copy(fp32.export_dir / "metadata.json", out / "metadata.json")
    return load_export(out, threads=threads)


def cpu_name() -> str:
    """Return the CPU model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load() -> str:
    """Return the 1/5/15-minute load averages."""
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="dy-yolo11n.yaml")
    ap.add_argument("--weights", default=None, help="a trained dydet checkpoint instead of random --model weights")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--reps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1, help="threads of every runtime (0: each one's default)")
    ap.add_argument("--bf16", action="store_true", help="also time OpenVINO at bf16 (its default where the CPU has it)")
    ap.add_argument("--int8", default=None, metavar="DATA", help="also time int8 exports calibrated on this data YAML")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import onnxruntime as ort

    from dydet.nn.backends.openvino import import_openvino

    ov = import_openvino()
    load_before = load()
    torch.manual_seed(0)
    if args.weights:
        from dydet import DynamicYOLO

        model = DynamicYOLO(args.weights).model.float().eval()
        args.model = Path(args.weights).name
    else:
        model = DynamicDetectionModel(args.model, verbose=False).eval()
    n = 8
    images = torch.rand(n, 3, args.imgsz, args.imgsz) * torch.linspace(0.2, 1.0, n).view(n, 1, 1, 1)
    with torch.no_grad():
        scores = model.router_scores(images)
    lo, hi = int(scores.argmin()), int(scores.argmax())
    pair = [images[hi : hi + 1], images[lo : lo + 1]]  # the easy one (high score), the hard one
    mid = float(scores[lo] + scores[hi]) / 2

    tmp = tempfile.TemporaryDirectory()  # kept until the end: OpenVINO may map the weight files
    runtimes = {
        "onnx": load_export(export_onnx(model, Path(tmp.name) / "onnx", imgsz=args.imgsz), threads=args.threads),
        "openvino": load_export(
            export_openvino(model, Path(tmp.name) / "openvino", imgsz=args.imgsz), threads=args.threads
        ),
    }
    names = RUNTIMES
    if args.bf16:  # the same IR compiled at OpenVINO's own default precision on bf16-capable CPUs
        from dydet.nn.backends import openvino

        bf16 = load_export(Path(tmp.name) / "openvino", threads=args.threads)
        open_graph = openvino.session_opener(bf16.device, args.threads, bf16.metadata, precision="bf16")
        bf16.sessions = {g: open_graph(bf16.export_dir / spec["file"], spec) for g, spec in bf16.graphs.items()}
        runtimes["openvino_bf16"], names = bf16, (*RUNTIMES, "openvino_bf16")
    if args.int8:
        from dydet.engine.quantize import Letterbox, pick, split_images

        q = export_openvino_int8(model, Path(tmp.name) / "openvino_int8", args.imgsz, args.int8)
        runtimes["openvino_int8"] = load_export(q, threads=args.threads)
        letterbox = Letterbox(runtimes["onnx"])
        calib = [letterbox(f) for f in pick(split_images(args.int8), 1.0)]
        runtimes["onnx_int8"] = ort_int8(runtimes["onnx"], Path(tmp.name) / "onnx_int8", calib, args.threads)
        names = (*names, "openvino_int8", "onnx_int8")
    cuts = {name: mid for name in names}
    for name in names:
        if name.endswith("int8"):  # its own calibration moves the threshold: route at the midpoint of its scores
            cuts[name] = float(sum(runtimes[name].run_trunk(p)[1][0] for p in pair)) / 2
    model = model.fuse(verbose=False).eval()  # the exported graphs are fused too, and so is the predictor's model

    def run(name: str, x: torch.Tensor, threshold: float):
        if name == "torch":
            (y, _), routing = model.routed(x, threshold)
            return y, routing.routes
        y, routing = runtimes[name].routed(x, threshold)
        return y, routing.routes

    with torch.inference_mode():
        for label, x, t in (("easy", pair[0], 0.0), ("hard", pair[0], 1.0), ("p=0.5", torch.cat(pair), None)):
            ys = {name: run(name, x, cuts[name] if t is None else t) for name in names}
            routes = {name: r for name, (_, r) in ys.items()}
            print(f"{label:<6} routes {routes}")
            assert len({tuple(routes[n]) for n in RUNTIMES}) == 1, f"{label}: runtimes route differently: {routes}"
            diffs = ", ".join(f"{n} {(ys[n][0] - ys['torch'][0]).abs().max():.1e}" for n in names[1:])
            print(f"{label:<6} max |y - y_torch|: {diffs}")

        candidates = {}
        for name in names:
            candidates[f"{name}_easy"] = lambda name=name: run(name, pair[0], 0.0)
            candidates[f"{name}_hard"] = lambda name=name: run(name, pair[0], 1.0)
            candidates[f"{name}_p50"] = lambda name=name, t=cuts[name]: (run(name, pair[0], t), run(name, pair[1], t))
        medians = interleaved_medians(candidates, reps=args.reps, warmup=5, progress=True)
    tmp.cleanup()
    for name in names:
        medians[f"{name}_p50"] /= 2  # two images per call

    threads = args.threads or "default"
    print(
        f"\n{args.model} batch 1 at {args.imgsz} px; {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__}, "
        f"onnxruntime {ort.__version__}, openvino {ov.__version__.split('-')[0]}; {threads} thread(s) each; "
        f"median of {args.reps} interleaved reps; load average before {load_before}, after {load()}"
    )
    print(
        "| route | PyTorch ms | ONNX Runtime ms | OpenVINO ms | ORT / PyTorch | OpenVINO / PyTorch | OpenVINO / ORT |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for route, key in (("easy", "easy"), ("hard", "hard"), ("p = 0.5 (per image)", "p50")):
        pt, ox, vino = (medians[f"{n}_{key}"] for n in RUNTIMES)
        print(f"| {route} | {pt:.2f} | {ox:.2f} | {vino:.2f} | {ox / pt:.2f} | {vino / pt:.2f} | {vino / ox:.2f} |")
    if args.bf16:
        print("| route | OpenVINO bf16 ms | bf16 / fp32 OpenVINO | bf16 OpenVINO / PyTorch |\n|---|---:|---:|---:|")
        for route, key in (("easy", "easy"), ("hard", "hard"), ("p = 0.5 (per image)", "p50")):
            b, f, pt = medians[f"openvino_bf16_{key}"], medians[f"openvino_{key}"], medians[f"torch_{key}"]
            print(f"| {route} | {b:.2f} | {b / f:.2f} | {b / pt:.2f} |")
    for name in names:
        print(f"{LABELS[name]} hard/easy: {medians[f'{name}_hard'] / medians[f'{name}_easy']:.2f}")
    print("\n| runtime | easy ms | hard ms | p = 0.5 ms/image | easy / PyTorch | hard / PyTorch | p = 0.5 / PyTorch |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in names:
        ms = [medians[f"{name}_{k}"] for k in ("easy", "hard", "p50")]
        ratios = [m / medians[f"torch_{k}"] for m, k in zip(ms, ("easy", "hard", "p50"))]
        print(f"| {LABELS[name]} | " + " | ".join(f"{v:.2f}" for v in (*ms, *ratios)) + " |")


if __name__ == "__main__":
    main()
