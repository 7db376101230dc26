#!/usr/bin/env bash
# dydet GPU benchmark (under 8 minutes on one GPU): the CUDA-graph equivalence tests, the speed benchmark (fp16, eager
# and CUDA graphs, batch 1 and batched, 640 px) and a short accuracy-against-cost run. Results: docs/BENCHMARKS.md, "GPU".
#
# Run from the repository root, on a machine with an NVIDIA GPU, Python 3.12 and a CUDA build of PyTorch:
#
#   bash benchmarks/gpu_bench.sh fetch   # once, on any machine with PyPI access: the cp312 manylinux x86-64 wheels
#                                        # of ultralytics and its few extra needs into .whl/ (about 57 MB, git-ignored
#                                        # via .git/info/exclude); copy .whl/ with the checkout if the GPU machine
#                                        # has no network
#   bash benchmarks/gpu_bench.sh         # on the GPU machine: installs the wheels into /tmp/site, puts this
#                                        # checkout's dydet on PYTHONPATH, runs the three steps and prints their log
#
# Writes into runs/gpu_bench/ (or the folder given as RESULTS_DIR=DIR): log.txt, speed.{csv,md,png} (speed benchmark) and
# accuracy_vs_cost.{csv,md,png} (short accuracy run).
#
# Sizes (environment): SPEED_IMGSZ=640 SPEED_BATCH=16 SPEED_REPS=30 ACC_EPOCHS=10 ACC_IMGSZ=320 ACC_NTRAIN=1200
# ACC_NVAL=300 BUDGET_S=470 (the whole script's wall-clock budget; each step is cut to what is left).
set -uo pipefail

WHEELS=(
  ultralytics==8.4.190
  ultralytics-thop==2.2.3
  ultralytics-platform==0.1.99
  polars==2.1.0
  polars-runtime-32==2.1.0
  pycocotools==2.0.11
)

fetch() {
  local py=${PYTHON:-.venv/bin/python}
  [ -x "$py" ] || py=python3
  grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
  mkdir -p .whl
  "$py" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"
  du -sh .whl
}

if [ "${1:-}" = "fetch" ]; then
  fetch
  exit $?
fi

# ---------------------------------------------------------------------------------------------- on the GPU machine
RESULTS_DIR=${RESULTS_DIR:-$PWD/runs/gpu_bench}
mkdir -p "$RESULTS_DIR"
T0=$(date +%s)
BUDGET_S=${BUDGET_S:-470}
left() { echo $((BUDGET_S - ($(date +%s) - T0))); }
cap() { local l; l=$(left); if [ "$l" -lt "$1" ]; then echo $((l > 1 ? l : 1)); else echo "$1"; fi; }  # seconds
step() { echo; echo "=== $* (t=$(($(date +%s) - T0)) s, $(left) s left)"; }

main() {
step "install"
PY=python3
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
else
  echo "no wheels in .whl/: run 'bash benchmarks/gpu_bench.sh fetch' on a machine with PyPI access and copy .whl/ here" && exit 1
fi
# dydet from this checkout (its configuration is inside the package, in dydet/cfg)
rm -rf /tmp/dydet_src && mkdir -p /tmp/dydet_src && cp -r dydet /tmp/dydet_src/
export PYTHONPATH=/tmp/dydet_src:/tmp/site${PYTHONPATH:+:$PYTHONPATH}
export DYDET_HOME=/tmp/dydet_home PYTHONUNBUFFERED=1 MPLBACKEND=Agg
# what dydet.utils.offline.setup_offline() sets, here before the first `import ultralytics` below
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false YOLO_CONFIG_DIR=/tmp/dydet_home/ultralytics
if ! $PY -c "import polars" 2>/dev/null; then  # ultralytics imports polars only to read results.csv and for plots
  echo "polars not carried: installing a stub (training plots off)"
  mkdir -p /tmp/site/polars && echo '"""Stub: polars was not carried to this machine."""' >/tmp/site/polars/__init__.py
fi
$PY - <<'EOF' || exit 1
import torch, ultralytics, dydet
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}; "
      f"ultralytics {ultralytics.__version__}; dydet {dydet.__version__}")
EOF
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv || true

step "CUDA-graph equivalence test"
timeout -k 5 "$(cap 90)" $PY -m pytest -q -p no:cacheprovider tests/engine/test_benchmarks.py \
  -k "graph or thresholds" || echo "CUDA-graph test FAILED (continuing)"

step "speed benchmark (fp16, eager + CUDA graphs)"
mkdir -p /tmp/speed
timeout -k 5 "$(cap 150)" $PY benchmarks/bench_routes.py --device 0 \
  --imgsz "${SPEED_IMGSZ:-640}" --batch "${SPEED_BATCH:-16}" --reps "${SPEED_REPS:-30}" --save-dir /tmp/speed \
  || echo "speed benchmark FAILED or timed out"
cp /tmp/speed/speed.csv /tmp/speed/speed.md /tmp/speed/speed.png "$RESULTS_DIR"/ 2>/dev/null

step "accuracy vs cost (short run)"
ACC_T=$(($(left) - 15))
if [ "$ACC_T" -gt 60 ]; then
  timeout -k 10 "$ACC_T" $PY benchmarks/accuracy_vs_cost.py --device 0 --latency-device 0 --workers 8 \
    --epochs "${ACC_EPOCHS:-10}" --imgsz "${ACC_IMGSZ:-320}" --n-train "${ACC_NTRAIN:-1200}" \
    --n-val "${ACC_NVAL:-300}" --batch 32 --reps 15 --project /tmp/avc || echo "accuracy run FAILED or timed out"
  cp /tmp/avc/accuracy_vs_cost.csv /tmp/avc/accuracy_vs_cost.md /tmp/avc/accuracy_vs_cost.png "$RESULTS_DIR"/ 2>/dev/null
else
  echo "skipped: only $ACC_T s left"
fi
step "done"
ls -la "$RESULTS_DIR"
}

main 2>&1 | tee "$RESULTS_DIR/log.txt"
exit "${PIPESTATUS[0]}"
