#!/usr/bin/env bash
# One command for a GPU machine (≤ 8 minutes on one GPU):
#   1. trainer vs the ordinary DataLoader loop, images/s, resnet-20 and resnet-56 at batch 128 and 512
#      (bf16 autocast, channels_last), with the recording's overhead;
#   2. the GPU Degradation and Fix presets at their time budget: plan, wall time vs estimate, final errors.
# On a machine without CUDA it runs the same code at tiny sizes (that is how the test suite checks it) and says
# which parts it skipped.
#
#   benchmarks/device_check.sh [--data DIR] [--minutes M] [--tiny]
#
# Data: --data, else $RESNET_VIZ_DATA, else the CIFAR-10 JPEG copy in ../shared/data (unpacked once), else random
# images for the throughput part (the presets then need --data).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
DATA=${RESNET_VIZ_DATA:-}
MINUTES=3
TINY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA=$2; shift 2 ;;
    --minutes) MINUTES=$2; shift 2 ;;
    --tiny) TINY=1; shift ;;
    *) echo "usage: $0 [--data DIR] [--minutes M] [--tiny]" >&2; exit 2 ;;
  esac
done

CUDA=$($PY -c "import torch; print(int(torch.cuda.is_available()))")
$PY - <<'EOF'
import platform, torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA GPU"
print(f"# device check · {gpu} · torch {torch.__version__} · {platform.machine()} · {torch.get_num_threads()} threads")
EOF

DATA_ARGS=()
if [ -n "$DATA" ]; then DATA_ARGS=(--data "$DATA"); fi
RUNS=$(mktemp -d "${TMPDIR:-/tmp}/device_check_runs.XXXXXX")
trap 'rm -rf "$RUNS"' EXIT

echo
echo "## 1. Throughput: trainer vs the ordinary loop"
if [ "$CUDA" = 1 ] && [ "$TINY" = 0 ]; then
  $PY -m benchmarks.train_throughput --depths 20 56 --archs residual --batch-sizes 128 512 --precision bf16 \
      --steps 40 --warmup 10 "${DATA_ARGS[@]}"
else
  echo "(no CUDA GPU or --tiny: tiny sizes on $( [ "$CUDA" = 1 ] && echo the GPU || echo the CPU ); the numbers only show that the path runs)"
  $PY -m benchmarks.train_throughput --depths 8 --archs residual --batch-sizes 16 32 --width 0.25 --precision fp32 \
      --steps 2 --warmup 1 "${DATA_ARGS[@]}"
fi

echo
echo "## 2. Presets at ${MINUTES} min each"
if [ "$CUDA" = 1 ] && [ "$TINY" = 0 ]; then
  if [ -z "$DATA" ]; then echo "skipped: the presets need real images (--data DIR)"; exit 0; fi
  for preset in degradation fix; do
    $PY -m resnet_viz --runs "$RUNS" "${DATA_ARGS[@]}" preset "$preset" --minutes "$MINUTES" --no-download
  done
  $PY -m resnet_viz --runs "$RUNS" list
else
  echo "skipped (CUDA only): the GPU presets train ResNet-56 for minutes; on this machine use"
  echo "  python -m resnet_viz preset degradation --minutes 3"
  $PY -m resnet_viz --runs "$RUNS" preset --list
fi
