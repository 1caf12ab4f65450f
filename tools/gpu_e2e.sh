#!/usr/bin/env bash
# GPU end-to-end rows of benchmarks/RESULTS.md (issue 21), one call on a lent H200:
#   bash tools/gpu_e2e.sh [ROW..]   # rows: profile quality_b16 lite_b16 lite_b16_8clips
#                                   # quality_dev quality_switch quality_nomark quality_prof
#                                   # quality_nodecode quality_noencode quality_nocodec quality_bare
#                                   # quality_bare_thread quality_tprof quality_bare_nocudnn quality_b16_nocudnn
#                                   # lite_b16_nocudnn q_planes q_rgbio q_planes_cudnn
#                                   # q_planes_bare l_planes l_planes_8clips live q_planes_nomark
#                                   # q_planes_nodecode q_planes_noencode q_planes_marksonly
#                                   # q_planes_pickled q_planes_dev q_planes_b32 q_planes_b64
#                                   # (default: quality_b16 lite_b16 lite_b16_8clips quality_nomark live)
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
E2E=${E2E:-.carry}  # where the clip and the identity travel
V=$E2E/liveportrait_source_s32.mp4
S=$E2E/hopper_256.npz
LOG=$OUT/e2e.log
run() {  # one row: $OUT/NAME.json, its lines in $OUT/e2e.log (8 files come back at most)
  name=$1; shift
  echo "== $name $*" >> "$LOG"
  timeout "${T:-120}" python3 -m slimswap.evaluate.bench_frame_path "$V" --source "$S" --device cuda --out "/tmp/e2e/$name" "$@" 2>&1 | grep -v -i warning | tee -a "$LOG"
  cp "/tmp/e2e/$name/e2e.json" "$OUT/$name.json" 2>/dev/null
}
rows=${*:-quality_b16 lite_b16 lite_b16_8clips quality_nomark live}
for row in $rows; do
  case $row in
  profile)
    echo "== profile" >> "$LOG"
    timeout 120 python3 benchmarks/frame_path_profile.py "$V" --source "$S" --mode quality --out "$OUT/profile.json" 2>&1 | grep -v -i warning | tee -a "$LOG" ;;
  quality_b16) T=130 run quality_b16 --mode quality --precision fp16 --batch 16 --repeat 4 --clips 1 --paths reference,device ;;
  lite_b16) T=90 run lite_b16 --mode lite --precision fp16 --batch 16 --repeat 4 --clips 1 --paths device ;;
  lite_b16_8clips) T=130 run lite_b16_8clips --mode lite --precision fp16 --batch 16 --repeat 1 --clips 8 --paths device ;;
  quality_dev) T=80 run quality_dev --mode quality --precision fp16 --batch 16 --repeat 4 --clips 1 --paths device ;;
  quality_switch) T=100 run quality_switch --mode quality --precision fp16 --batch 16 --repeat 4 --clips 1 --paths device --switch-interval 0.0002 ;;
  # where the launching thread's time goes (session 5): a wall-clock profile, then the codec
  # taken off in parts (needs pyinstrument's wheel in .whl/ for the profile)
  quality_prof) T=100 run quality_prof --mode quality --precision fp16 --batch 16 --repeat 4 --clips 1 --paths device --profile "$OUT/quality_prof.txt" ;;
  quality_nodecode) T=80 run quality_nodecode --mode quality --precision fp16 --batch 16 --repeat 4 --clips 1 --paths device --isolate decode ;;
  quality_noencode) T=80 run quality_noencode --mode quality --precision fp16 --batch 16 --repeat 4 --clips 1 --paths device --isolate encode ;;
  quality_nocodec) T=80 run quality_nocodec --mode quality --precision fp16 --batch 16 --repeat 4 --clips 1 --paths device --isolate both ;;
  quality_bare) T=70 run quality_bare --mode quality --precision fp16 --batch 16 --repeat 4 --clips 1 --paths device --isolate both --no-watermark ;;
  quality_bare_thread) T=70 run quality_bare_thread --mode quality --precision fp16 --batch 16 --repeat 4 --clips 1 --paths device --isolate both --no-watermark --in-thread ;;
  # the same two, torch.profiler's op tables of 4 batches (session 6: is the host waiting
  # inside the detector's conv2d, or are its kernels slow?)
  quality_tprof) T=80 run quality_tprof --mode quality --precision fp16 --batch 16 --repeat 2 --clips 1 --paths device --isolate both --no-watermark --torch-profile "$OUT/quality_tprof.txt" ;;
  # session 6: the analysis nets on torch's own kernels instead of cuDNN's
  quality_bare_nocudnn) SLIMSWAP_ANALYSIS_CUDNN=0 T=70 run quality_bare_nocudnn --mode quality --precision fp16 --batch 16 --repeat 4 --clips 1 --paths device --isolate both --no-watermark ;;
  quality_b16_nocudnn) SLIMSWAP_ANALYSIS_CUDNN=0 T=130 run quality_b16_nocudnn --mode quality --precision fp16 --batch 16 --repeat 4 --clips 1 --paths device ;;
  lite_b16_nocudnn) SLIMSWAP_ANALYSIS_CUDNN=0 T=90 run lite_b16_nocudnn --mode lite --precision fp16 --batch 16 --repeat 4 --clips 1 --paths device ;;
  # session 6: decoded planes converted on the device both ways (the default now) against
  # RGB in and out on the host (--rgb-io), the analysis without cuDNN; then cuDNN back on
  q_planes) SLIMSWAP_ANALYSIS_CUDNN=0 T=130 run q_planes --mode quality --precision fp16 --batch 16 --repeat 4 --clips 1 --paths reference,device ;;
  q_rgbio) SLIMSWAP_ANALYSIS_CUDNN=0 T=90 run q_rgbio --mode quality --precision fp16 --batch 16 --repeat 4 --clips 1 --paths device --rgb-io ;;
  q_planes_cudnn) SLIMSWAP_ANALYSIS_CUDNN=1 T=90 run q_planes_cudnn --mode quality --precision fp16 --batch 16 --repeat 4 --clips 1 --paths device ;;
  q_planes_bare) SLIMSWAP_ANALYSIS_CUDNN=0 T=70 run q_planes_bare --mode quality --precision fp16 --batch 16 --repeat 4 --clips 1 --paths device --isolate both --no-watermark ;;
  l_planes) SLIMSWAP_ANALYSIS_CUDNN=0 T=90 run l_planes --mode lite --precision fp16 --batch 16 --repeat 4 --clips 1 --paths device ;;
  l_planes_8clips) SLIMSWAP_ANALYSIS_CUDNN=0 T=130 run l_planes_8clips --mode lite --precision fp16 --batch 16 --repeat 1 --clips 8 --paths device ;;
  # session 7: which of decode, encode and the marks slows the launching thread 2x (planes path;
  # with the launching thread's CPU time against its wall time)
  q_planes_nomark) T=90 run q_planes_nomark --mode quality --precision fp16 --batch 16 --repeat 4 --clips 1 --paths device --no-watermark ;;
  q_planes_nodecode) T=90 run q_planes_nodecode --mode quality --precision fp16 --batch 16 --repeat 4 --clips 1 --paths device --isolate decode ;;
  q_planes_noencode) T=90 run q_planes_noencode --mode quality --precision fp16 --batch 16 --repeat 4 --clips 1 --paths device --isolate encode ;;
  q_planes_marksonly) T=90 run q_planes_marksonly --mode quality --precision fp16 --batch 16 --repeat 4 --clips 1 --paths device --isolate both ;;
  # session 7: the marks' frames through shared memory (the default now) against pickled
  # next: fewer launches a frame with larger batches (the analysis and the model are batched,
  # the paste is one face at a time)
  q_planes_b32) T=110 run q_planes_b32 --mode quality --precision fp16 --batch 32 --repeat 4 --clips 1 --paths device ;;
  q_planes_b64) T=130 run q_planes_b64 --mode quality --precision fp16 --batch 64 --repeat 4 --clips 1 --paths device ;;
  q_planes_dev) T=90 run q_planes_dev --mode quality --precision fp16 --batch 16 --repeat 4 --clips 1 --paths device ;;
  q_planes_pickled) SLIMSWAP_SHARED_MARKS=0 T=90 run q_planes_pickled --mode quality --precision fp16 --batch 16 --repeat 4 --clips 1 --paths device ;;
  quality_nomark) T=70 run quality_nomark --mode quality --precision fp16 --batch 16 --repeat 4 --clips 1 --paths device --no-watermark ;;
  live)
    echo "== live quality 1280x720" >> "$LOG"
    timeout 110 python3 benchmarks/live_bench.py --device cuda --mode quality --width 1280 --height 720 --fps 120 --seconds 12 --clip "$V" --source "$S" --out "$OUT/live_gpu.json" 2>&1 | grep -v -i warning | tee -a "$LOG" ;;
  esac
done
# E2E_TAR=1: the rows in one file (a call brings back 8 files at most; the campaign's take 5)
if [ "${E2E_TAR:-0}" = 1 ]; then
  (cd "$OUT" && tar czf e2e_rows.tgz ./*.json ./*.txt e2e.log 2>/dev/null; rm -f ./*.json ./*.txt e2e.log)
fi
