"""Calibration: router scores on the validation split and per-route costs, stored in the model.

The method is described in docs/METHOD.md, "Thresholds, hard ratios and budgets".

`model.calibration` is the one source of truth that turns a hard ratio or a cost budget (`gflops=`, `latency=`) into
a threshold; the rules that do it are in `dydet.routing` (`threshold_for_hard_ratio`, `budget_hard_ratio`):

    {
        "scores": sorted router scores of the validation images (list[float]),
        "imgsz": image size the scores and costs were taken at,
        "gflops": {"easy", "hard", "router"} per image,
        "latency_ms": {"easy", "hard"} batch-1 latency per image on `device`,
        "device": where latencies were measured, "precision": "fp32" | "fp16",
        "data": the data YAML, "n_images": number of scores,
    }
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dydet.nn.checkpoint import load_checkpoint_dict, save_checkpoint
from dydet.utils.checkpoint import is_model_record, load_raw
from dydet.utils.errors import DataError
from dydet.utils.flops import route_gflops
from dydet.utils.preprocess import prediction_scores
from dydet.utils.timing import interleaved_medians
from dydet.utils.torch_utils import fused_eval_copy


def measure_route_latency(
    model: torch.nn.Module, imgsz: int, device: torch.device | str = "cpu", reps: int = 20
) -> dict[str, float]:
    """Measure batch-1 latency (median ms) of each forced route, interleaved, on random input."""
    x = torch.rand(1, 3, imgsz, imgsz, device=device, dtype=next(model.parameters()).dtype)
    with torch.inference_mode():
        return interleaved_medians(
            {r: (lambda r=r: model(x, route=r)) for r in ("easy", "hard")}, reps=reps, warmup=3, device=device
        )


def build_calibration(
    model: torch.nn.Module, scores: list[float], imgsz: int, data: str | Path, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """Assemble `model.calibration` from validation scores, route GFLOPs and measured latencies.

    Args:
        model (torch.nn.Module): The dynamic model (eval mode).
        scores (list[float]): Router scores of every validation image.
        imgsz (int): Image size of the scores.
        data (str | Path): The data YAML the scores came from.
        device (torch.device | str): Where to measure latency.

    Returns:
        (dict): The calibration record.
    """
    if not scores:
        raise DataError(f"cannot calibrate on '{data}': its validation split produced no router scores")

    t0 = time.perf_counter()
    deployed = fused_eval_copy(model)  # costs as inference pays them: Conv+BN fused, like `dydet benchmark`
    gflops = {part: route_gflops(deployed, part, imgsz) for part in ("easy", "hard", "router")}
    latency = measure_route_latency(deployed, imgsz, device)
    dtype = next(deployed.parameters()).dtype
    return {
        "scores": sorted(float(s) for s in scores),
        "imgsz": int(imgsz),
        "gflops": gflops,
        "latency_ms": latency,
        "device": str(device),
        "precision": "fp16" if dtype == torch.float16 else "fp32",
        "data": str(data),
        "n_images": len(scores),
        "seconds": time.perf_counter() - t0,
    }


# After calibration, the 10 % and 90 % quantiles of the calibration images' router logits sit at these logits, i.e.
# scores 0.1 and 0.9, with the median at 0.5 (see `Router.normalize`).
CALIBRATED_LOGIT_SPREAD = 2 * math.log(9)


def center_router(model: torch.nn.Module, files: list[str], imgsz: int) -> list[float]:
    """Normalize the router so that `files` score around 0.5 (median) from 0.1 to 0.9 (10-90 %); return their scores.

    Only the router's last conv changes, by a monotone map of its logit, so the images keep their order and every hard
    ratio its images; a raw `threshold=0.5` then sends about half of images like these hard. The scores are taken as
    `predict` takes them (`dydet.utils.preprocess.prediction_scores`).

    Args:
        model (torch.nn.Module): The dynamic model (with `router`).
        files (list[str]): The calibration images.
        imgsz (int): Their prediction size.

    Returns:
        (list[float]): The new scores of `files`, in order.
    """
    logits = np.asarray(prediction_scores(model, files, imgsz, logits=True), dtype=np.float64)
    lo, median, hi = np.quantile(logits, (0.1, 0.5, 0.9))
    spread = hi - lo
    model.router.normalize(float(median), float(spread / CALIBRATED_LOGIT_SPREAD) if spread > 1e-6 else 1.0)
    return prediction_scores(model, files, imgsz)


def save_calibrated(
    checkpoint: str | Path, calibration: dict[str, Any], threshold: float, router: torch.nn.Module | None = None
) -> Path:
    """Write `final.pt` beside `checkpoint`: the same checkpoint with the calibration and default threshold set.

    A `final.pt` input is never rewritten: its calibrated copy is `final-2.pt` (`calibrated_path`).

    The file is weights-only and written to a temporary name, flushed and renamed into place, so an interruption never
    leaves a broken `final.pt`; the source checkpoint is not modified.

    Args:
        checkpoint (str | Path): The trained (stage-2) checkpoint.
        calibration (dict): The calibration record.
        threshold (float): Default threshold to store in the model.
        router (torch.nn.Module, optional): The calibrated (centered) router, whose weights replace the stored ones.

    Returns:
        (Path): The path of `final.pt`.
    """
    checkpoint = Path(checkpoint)
    ckpt = load_raw(checkpoint)
    if not any(is_model_record(ckpt.get(k)) for k in ("model", "ema")):  # a trusted old-format file: rebuild + pack
        ckpt = load_checkpoint_dict(checkpoint)
    for key in ("model", "ema"):
        record = ckpt.get(key)
        if is_model_record(record):
            record["calibration"], record["threshold"] = calibration, float(threshold)
            if router is not None:
                state = record["state_dict"]
                for k, v in router.state_dict().items():
                    state[f"router.{k}"] = v.detach().to("cpu", state[f"router.{k}"].dtype).clone()
        elif record is not None:
            record.calibration, record.threshold = calibration, threshold
            if router is not None:
                record.router.load_state_dict(router.state_dict())
    return save_checkpoint(ckpt, calibrated_path(checkpoint))


def calibrated_path(checkpoint: str | Path) -> Path:
    """Return where the calibrated copy of `checkpoint` goes: `final.pt` beside it, never over the input itself.

    Calibrating a `final.pt` again writes `final-2.pt` (or the next free `final-N.pt`).
    """
    checkpoint = Path(checkpoint)
    out, n = checkpoint.with_name("final.pt"), 1
    while out.resolve() == checkpoint.resolve() or (n > 1 and out.exists()):
        n += 1
        out = checkpoint.with_name(f"final-{n}.pt")
    return out
