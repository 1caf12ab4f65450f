#!/usr/bin/env bash
# One device call of teacher training on the lent GPU machine (see benchmarks/RESULTS.md).
#   bash tools/gpu_train.sh SECONDS [extra `slimswap train teacher` options]
# Expects .carry/train_128.npz, .carry/identity_fp16.safetensors and .whl/ (typer, rich);
# continues from runs/teacher/checkpoint.pt when the machine is still warm, else from
# .carry/compact/ when present. Returns the compact checkpoint, log and samples under $OUT.
set -euo pipefail
secs=${1:-500}; shift || true
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1
init=()
if [ ! -f runs/teacher/checkpoint.pt ] && [ -f .carry/compact/G.safetensors ]; then init=(--init-from .carry/compact); fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -m slimswap.cli train teacher --data .carry/train_128.npz --identity-weights .carry/identity_fp16.safetensors \
  --out runs/teacher --max-seconds "$secs" --export-compact "$OUT/ck" "${init[@]}" "$@" 2>&1 | grep -v Warning
cp runs/teacher/train_log.png runs/teacher/train_log.csv "$OUT/ck/"
cp "$(ls runs/teacher/samples_*.png | tail -1)" "$OUT/ck/samples.png"
ls -la "$OUT/ck"
