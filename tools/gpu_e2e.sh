#!/usr/bin/env bash
# GPU end-to-end rows of benchmarks/RESULTS.md (issue 21), one call on a lent H200:
#   bash tools/gpu_e2e.sh
# Needs .whl/ (PyAV's wheel: the GPU image has no PyAV) and .carry/ (the 1280x720 held-out
# clip liveportrait_source_s32.mp4 and hopper_256.npz, the source identity written here by
# slimswap.evaluate.bench_frame_path.save_identity: the GPU image has no dlib model files).
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader
nproc
V=.carry/liveportrait_source_s32.mp4
S=.carry/hopper_256.npz
run() {
  name=$1; shift
  timeout "${T:-170}" python3 -m slimswap.evaluate.bench_frame_path "$V" --source "$S" --device cuda --out "$OUT/$name" "$@" 2>&1 | grep -v -i warning | tee "$OUT/$name.log"
}
run lite_b16 --mode lite --precision fp16 --batch 16 --repeat 4 --clips 1,8 --paths reference,device
run quality_b16 --mode quality --precision fp16 --batch 16 --repeat 6 --clips 1,8 --paths device
run lite_nomark --mode lite --precision fp16 --batch 16 --repeat 6 --clips 1,8 --paths device --no-watermark
T=90 run quality_b1 --mode quality --precision fp16 --batch 1 --repeat 1 --clips 1 --paths device
