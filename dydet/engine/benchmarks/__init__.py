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

Modules: `result` (rows, ratios, report), `candidates` (models and images), `splits` (exact hard-ratio splits),
`runner` (eager / CUDA-graph timing and `run_benchmark`).
"""

from dydet.engine.benchmarks.candidates import (
    benchmark_images,
    default_baselines,
    load_dynamic,
    load_static,
    parse_baselines,
    static_base_name,
)
from dydet.engine.benchmarks.result import (
    EASY,
    HARD,
    REFERENCES,
    ROUTED_EASY,
    SCALES,
    BenchmarkResult,
    dynamic_latency_by_ratio,
    plot_speed,
)
from dydet.engine.benchmarks.runner import benchmark_speed, run_benchmark
from dydet.engine.benchmarks.splits import (
    MIN_SCORE_GAP,
    sequence_scores,
    split_gaps_ok,
    split_thresholds,
    spread_router,
)

__all__ = [
    "BenchmarkResult",
    "EASY",
    "HARD",
    "MIN_SCORE_GAP",
    "REFERENCES",
    "ROUTED_EASY",
    "SCALES",
    "benchmark_images",
    "benchmark_speed",
    "default_baselines",
    "dynamic_latency_by_ratio",
    "load_dynamic",
    "load_static",
    "parse_baselines",
    "plot_speed",
    "run_benchmark",
    "sequence_scores",
    "split_gaps_ok",
    "split_thresholds",
    "spread_router",
    "static_base_name",
]
