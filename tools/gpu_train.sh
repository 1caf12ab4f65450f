#!/usr/bin/env bash
# One device call of teacher training on the lent GPU machine (see benchmarks/RESULTS.md).
#   bash tools/gpu_train.sh SECONDS [extra `slimswap train teacher` options]
# Needs .carry/train_128.npz, .carry/identity_fp16.safetensors and .whl/ (typer, rich) on the
# first call; a warm machine keeps them in runs/cache. Continues from runs/teacher3/checkpoint.pt
# (warm machine) or .carry/compact/ (cold). Returns compact checkpoint, log, samples in $OUT/ck.
set -euo pipefail
secs=${1:-500}; shift || true
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1
mkdir -p runs/cache
for f in .carry/train_128*.npz; do [ -f "$f" ] && cp "$f" runs/cache/train_128.npz; done
[ -f .carry/identity_fp16.safetensors ] && cp .carry/identity_fp16.safetensors runs/cache/
# the released teacher is the EMA generator of the compact checkpoint (same tensors, fp16)
if [ -d .carry/compact ] && [ ! -f .carry/compact/G_ema.safetensors ] && [ -f models/teacher_128.safetensors ]; then
  cp models/teacher_128.safetensors .carry/compact/G_ema.safetensors
fi
init=()
if [ ! -f runs/teacher3/checkpoint.pt ] && [ -f .carry/compact/G_ema.safetensors ]; then init=(--init-from .carry/compact); fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 - "$secs" "${init[@]}" "$@" <<'PY' 2>&1 | grep -v Warning
import sys
from pathlib import Path
from slimswap.train.teacher import TrainConfig, train_teacher
args = sys.argv[2:]
opt = lambda k, d: args[args.index(k) + 1] if k in args else d
cfg = TrainConfig(data="runs/cache/train_128.npz", identity_weights="runs/cache/identity_fp16.safetensors",
                  out="runs/teacher3", max_seconds=float(sys.argv[1]), batch=int(opt("--batch", 128)),
                  compile="--compile" in args, init_from=opt("--init-from", ""))
train_teacher(cfg, export_compact=Path("runs/teacher3_compact"))
PY
mkdir -p "$OUT/ck"
cp runs/teacher3_compact/* runs/teacher3/train_log.png runs/teacher3/train_log.csv "$OUT/ck/"
cp "$(ls runs/teacher3/samples_*.png | tail -1)" "$OUT/ck/samples.png"
ls -la "$OUT/ck"
