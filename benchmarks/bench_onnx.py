"""ONNX Runtime against PyTorch on the CPU, per route at batch 1, all candidates timed side by side.

Exports the model as split graphs (router / easy / hard) to a temporary directory, then times with interleaved
repetitions and medians in one run, every candidate routed by its own router (threshold 0 -> all easy, 1 -> all hard):
  * PyTorch easy:  B1 + router + H1          (fused fp32 model, `model(x, threshold=0)`)
  * PyTorch hard:  B1 + router + B2 + H2     (`model(x, threshold=1)`)
  * ONNX easy:     router graph + easy graph (`ExportedDynamicModel(x, threshold=0)`)
  * ONNX hard:     router graph + hard graph (`ExportedDynamicModel(x, threshold=1)`)
  * ONNX router:   the router graph alone (B1 + router, the part both routes share)
Prints the medians and the ONNX / PyTorch ratio per route, and checks that both runtimes agree on the outputs.

Both libraries get one intra-op thread by default: on a shared machine PyTorch's multi-threaded kernels collapse under
oversubscription (measured 200-2000 ms for a 33 ms easy route on 2 busy cores), which would compare the machine's load
rather than the runtimes. `--threads 0` keeps each library's own default.

Usage:
    python benchmarks/bench_onnx.py [--model dy-yolo11n.yaml] [--imgsz 320] [--reps 50] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile

import torch

from dydet.utils.offline import setup_offline

setup_offline()  # first: Ultralytics reads its offline settings once, when it is imported

from dydet.engine.exporter import export_onnx
from dydet.nn.backends.runtime import load_export
from dydet.nn.tasks import DynamicDetectionModel
from dydet.utils.timing import interleaved_medians


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="dy-yolo11n.yaml")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads (0: each one's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import onnxruntime as ort

    torch.manual_seed(0)
    model = DynamicDetectionModel(args.model, verbose=False).eval()
    x = torch.rand(1, 3, args.imgsz, args.imgsz)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_model = load_export(export_onnx(model, tmp, imgsz=args.imgsz), threads=args.threads)
        model = model.fuse(verbose=False).eval()  # the exported graphs are fused too, and so is the predictor's model
        with torch.inference_mode():
            for t in (0.0, 1.0):  # both runtimes route alike and agree on the outputs
                ((y_pt, _), pt_routing), (y_ort, ort_routing) = model.routed(x, t), onnx_model.routed(x, t)
                assert pt_routing.routes == ort_routing.routes
                diff = (y_pt - y_ort).abs().max()
                print(f"threshold {t:.0f} ({pt_routing.routes[0]}): max |y_onnx - y_torch| = {diff:.2e}")
            medians = interleaved_medians(
                {
                    "torch_easy": lambda: model(x, threshold=0.0),
                    "torch_hard": lambda: model(x, threshold=1.0),
                    "onnx_easy": lambda: onnx_model(x, threshold=0.0),
                    "onnx_hard": lambda: onnx_model(x, threshold=1.0),
                    "onnx_router": lambda: onnx_model.run_router(x.numpy()),
                },
                reps=args.reps,
                warmup=5,
                progress=True,
            )

    print(
        f"\n{args.model} batch 1 at {args.imgsz} px, CPU: {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), onnxruntime {ort.__version__} ({args.threads or 'default'} threads); "
        f"median of {args.reps} interleaved reps"
    )
    print(f"{'route':<6} {'PyTorch ms':>11} {'ONNX ms':>9} {'ONNX/PyTorch':>13}")
    for route in ("easy", "hard"):
        pt, ox = medians[f"torch_{route}"], medians[f"onnx_{route}"]
        print(f"{route:<6} {pt:>11.2f} {ox:>9.2f} {ox / pt:>13.2f}")
    print(f"ONNX router graph alone (B1 + router): {medians['onnx_router']:.2f} ms")
    print(
        f"hard/easy: PyTorch {medians['torch_hard'] / medians['torch_easy']:.2f}, "
        f"ONNX {medians['onnx_hard'] / medians['onnx_easy']:.2f}"
    )


if __name__ == "__main__":
    main()
