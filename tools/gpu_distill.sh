#!/usr/bin/env bash
# One device call of student distillation, then a GPU throughput benchmark of both generators.
#   bash tools/gpu_distill.sh SECONDS [WIDTH]
# Needs .carry/train_128*.npz, .carry/identity_fp16.safetensors, models/teacher_128.safetensors and
# .carry/compact_t/D.safetensors (the teacher run's discriminator). Returns $OUT/ck.
set -euo pipefail
secs=${1:-400}; width=${2:-0.5}
export PYTHONPATH=. PYTHONUNBUFFERED=1
mkdir -p runs/cache
for f in .carry/train_128*.npz; do [ -f "$f" ] && cp "$f" runs/cache/train_128.npz; done
[ -f .carry/identity_fp16.safetensors ] && cp .carry/identity_fp16.safetensors runs/cache/
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 - "$secs" "$width" "${3:-compile}" <<'PY' 2>&1 | grep -v Warning
import sys
from pathlib import Path
from slimswap.compress.distill import distill_student
from slimswap.train.teacher import TrainConfig
init = ".carry/student_compact" if Path(".carry/student_compact/G_ema.safetensors").exists() else ""
cfg = TrainConfig(data="runs/cache/train_128.npz", identity_weights="runs/cache/identity_fp16.safetensors",
                  out="runs/student", max_seconds=float(sys.argv[1]), batch=128, compile=sys.argv[3] == "compile",
                  landmark_pretrain_steps=300, init_from=init)
distill_student(cfg, "models/teacher_128.safetensors", float(sys.argv[2]), critic_from=None if init else ".carry/compact_t",
                export_compact=Path("runs/student_compact"))
PY
mkdir -p "$OUT/ck"
cp runs/student_compact/G_ema.safetensors runs/student_compact/state.json runs/student/train_log.png runs/student/train_log.csv "$OUT/ck/"
cp "$(ls runs/student/samples_*.png | tail -1)" "$OUT/ck/samples.png"
ls -la "$OUT/ck"
