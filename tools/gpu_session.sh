#!/usr/bin/env bash
# One call of the GPU session on a lent 2-GPU machine (commands and results in benchmarks/RESULTS.md).
#   bash tools/gpu_session.sh start     # stage data, smoke-test every path, teacher on 2 GPUs (DDP),
#                                       # then in the background: teacher on GPU 0, recognizer on GPU 1
#   bash tools/gpu_session.sh watch S   # wait S seconds, report progress (logs, samples) in $OUT
#   bash tools/gpu_session.sh then CMD  # start a background step on GPU 1 (ablate NAME SECS | distill SECS)
#   bash tools/gpu_session.sh collect   # wait for the teacher, return compact weights and logs
#   bash tools/gpu_session.sh ab SECS V1 V2 ..  # session 2: one A/B variant per GPU, SECS each, scored
#                                               # against the plain warp paste; returns every EMA,
#                                               # and the compact checkpoint of the best
#   bash tools/gpu_session.sh cont SECS [V]     # continue the best A/B variant (or V) with DDP on
#                                               # every GPU, from runs/ (warm) or .carry/init/
# Needs .carry/ (shards + identity_fp16.safetensors); a warm machine keeps runs/ between calls.
set -uo pipefail
export PYTHONUNBUFFERED=1 STAGE=runs/stage NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
OUT=${OUT:-/tmp/out}
mkdir -p runs/stage "$OUT"
[ -d .carry ] && cp -n .carry/* runs/stage/ 2>/dev/null
report() {
  for f in runs/*.log; do [ -f "$f" ] && { echo "== $f"; grep -v Warning "$f" | tail -n "${1:-6}"; }; done
  nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader
}
case "${1:-}" in
cont)
  secs=$2; v=${3:-$(head -1 runs/best.txt 2>/dev/null)}
  init=runs/ablate_$v/compact; [ -f "$init/state.json" ] || init=runs/stage/init
  [ -d .carry/init ] && [ ! -f "$init/state.json" ] && { mkdir -p runs/stage/init; cp .carry/init/* runs/stage/init/; }
  n=${NGPU:-$(nvidia-smi -L | wc -l)}; echo "continue $v from $init on $n GPUs for $secs s"
  export RECOGNIZER=models/eval_recognizer.safetensors
  COMPILE=0 INIT_FROM=$init timeout $((secs + 120)) torchrun --standalone --nproc_per_node="$n" tools/gpu_session.py ablate "$v" "$secs" > runs/cont.log 2>&1
  echo "rc $?"; grep -v Warning runs/cont.log | grep -E "step|$v:|Error|error" | tail -8
  mkdir -p "$OUT"; d=runs/ablate_$v
  cp "$d/teacher_ema_fp16.safetensors" "$OUT/$v.safetensors"
  cp "$d/compact/G.safetensors" "$OUT/cont_G.safetensors"; cp "$d/compact/D.safetensors" "$OUT/cont_D.safetensors"
  tar czf "$OUT/cont_logs.tgz" runs/cont.log "$d/scores.json" "$d/train_log.csv" "$d"/samples_*.png "$d/compact/state.json" 2>/dev/null
  ls -la "$OUT"
  true ;;
ab)
  secs=$2; shift 2
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  export RECOGNIZER=models/eval_recognizer.safetensors
  i=0
  for v in "$@"; do
    setsid nohup env CUDA_VISIBLE_DEVICES=$i COMPILE=0 python3 tools/gpu_session.py ablate "$v" "$secs" > "runs/ablate_$v.log" 2>&1 < /dev/null &
    i=$((i + 1))
  done
  sleep 100  # the first minute proves every variant runs: a crash ends the call now
  for v in "$@"; do grep -q "img/s" "runs/ablate_$v.log" || { echo "== $v did not start"; tail -30 "runs/ablate_$v.log"; }; done
  grep -q "img/s" runs/ablate_"$1".log || { pkill -f gpu_session.py; cp runs/*.log "$OUT/"; exit 1; }
  while pgrep -f "gpu_session.py ablate" > /dev/null; do sleep 3; done
  CUDA_VISIBLE_DEVICES=0 python3 tools/gpu_session.py score warp=none > runs/score_warp.log 2>&1
  cp runs/scores.json runs/scores_warp.json
  for v in "$@"; do echo "== $v"; grep -v Warning "runs/ablate_$v.log" | grep -E "step|$v:" | tail -4; done
  grep "warp:" runs/score_warp.log
  python3 tools/pick_variant.py runs "$@" > runs/best.txt; cat runs/best.txt
  best=$(head -1 runs/best.txt)
  mkdir -p "$OUT"
  for v in "$@"; do cp "runs/ablate_$v/teacher_ema_fp16.safetensors" "$OUT/$v.safetensors" 2>/dev/null; done
  cp "runs/ablate_$best/compact/G.safetensors" "$OUT/best_G.safetensors"
  cp "runs/ablate_$best/compact/D.safetensors" "$OUT/best_D.safetensors"
  tar czf "$OUT/logs.tgz" runs/*.log runs/best.txt runs/scores_warp.json runs/ablate_*/scores.json runs/ablate_*/train_log.csv runs/ablate_*/samples_*.png runs/ablate_*/compact/state.json 2>/dev/null
  ls -la "$OUT"
  true ;;
final)
  touch runs/teacher/STOP; while pgrep -f "gpu_session.py" > /dev/null; do sleep 2; done
  mkdir -p "$OUT/v1"; cp runs/teacher/teacher_ema_fp16.safetensors "$OUT/v1/teacher_s4skip.safetensors"
  mv runs/teacher runs/teacher_s4skip
  setsid nohup env CUDA_VISIBLE_DEVICES=0 python3 tools/gpu_session.py teacher "$2" > runs/teacher.log 2>&1 < /dev/null &
  setsid nohup env CUDA_VISIBLE_DEVICES=1 python3 tools/gpu_session.py student "$2" > runs/student.log 2>&1 < /dev/null &
  sleep 5; while pgrep -f "gpu_session.py" > /dev/null; do sleep 3; done
  cp runs/teacher/teacher_ema_fp16.safetensors "$OUT/teacher.safetensors"; cp runs/student/teacher_ema_fp16.safetensors "$OUT/student.safetensors"
  python3 tools/gpu_session.py score teacher=runs/teacher/teacher_ema_fp16.safetensors student=runs/student/teacher_ema_fp16.safetensors s4skip=runs/teacher_s4skip/teacher_ema_fp16.safetensors > runs/score.log 2>&1
  grep -E "teacher:|student:|s4skip:" runs/score.log; report 3
  cp runs/scores.json "$OUT/"; cp runs/teacher/samples_*.png "$OUT/teacher_samples.png"; cp runs/student/samples_*.png "$OUT/student_samples.png"
  tar czf "$OUT/logs.tgz" runs/*.log runs/teacher/train_log.csv runs/student/train_log.csv runs/teacher_s4skip/train_log.csv 2>/dev/null
  true ;;
resume)
  # teacher on GPU 0 (continues runs/teacher), then A/B variants side by side on GPU 1 once the
  # recognizer is done (equal share of one GPU each, equal wall time)
  setsid nohup env CUDA_VISIBLE_DEVICES=0 python3 tools/gpu_session.py teacher "${TEACHER_SECONDS:-840}" > runs/teacher.log 2>&1 < /dev/null &
  while pgrep -f "gpu_session.py recognizer" > /dev/null; do sleep 5; done
  for v in ${ABLATE:-full no_warp}; do
    setsid nohup env CUDA_VISIBLE_DEVICES=1 python3 tools/gpu_session.py ablate "$v" "${ABLATE_SECONDS:-200}" > "runs/ablate_$v.log" 2>&1 < /dev/null &
  done
  sleep "${2:-60}"; report 6
  cp runs/recognizer/eval_recognizer.safetensors runs/recognizer/metrics.json "$OUT/" 2>/dev/null
  for v in ${ABLATE:-full no_warp}; do cp "runs/ablate_$v/scores.json" "$OUT/scores_$v.json" 2>/dev/null; done
  s=$(ls runs/teacher/samples_*.png 2>/dev/null | tail -1); [ -n "$s" ] && cp "$s" "$OUT/teacher_samples.png"
  true ;;
start)
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, 'gpus', torch.cuda.device_count())"
  ls -la runs/stage
  if ! CUDA_VISIBLE_DEVICES=0 COMPILE=0 timeout 240 python3 tools/gpu_session.py smoke > runs/smoke.log 2>&1; then
    tail -60 runs/smoke.log; cp runs/smoke.log "$OUT/"; exit 1
  fi
  grep -E "ok in|img/s|smoke:" runs/smoke.log | tail -8
  # DDP phase: both GPUs on the teacher (also the 2-GPU throughput row)
  timeout "${DDP_TIMEOUT:-300}" torchrun --standalone --nproc_per_node=2 tools/gpu_session.py teacher "${DDP_SECONDS:-210}" > runs/teacher_ddp.log 2>&1
  grep -v Warning runs/teacher_ddp.log | tail -4
  setsid nohup env CUDA_VISIBLE_DEVICES=0 python3 tools/gpu_session.py teacher "${TEACHER_SECONDS:-1500}" > runs/teacher.log 2>&1 < /dev/null &
  setsid nohup env CUDA_VISIBLE_DEVICES=1 python3 tools/gpu_session.py recognizer "${REC_SECONDS:-400}" > runs/recognizer.log 2>&1 < /dev/null &
  sleep "${2:-60}"; report
  cp runs/teacher_ddp.log runs/smoke.log "$OUT/" ;;
watch)
  sleep "${2:-60}"; report 8
  cp runs/*.log "$OUT/" 2>/dev/null
  s=$(ls runs/teacher/samples_*.png 2>/dev/null | tail -1); [ -n "$s" ] && cp "$s" "$OUT/teacher_samples.png"
  [ -f runs/recognizer/eval_recognizer.safetensors ] && cp runs/recognizer/eval_recognizer.safetensors runs/recognizer/metrics.json "$OUT/"
  true ;;
then)
  shift; name="gpu1_$1"
  setsid nohup env CUDA_VISIBLE_DEVICES=1 python3 tools/gpu_session.py "$@" > "runs/$name.log" 2>&1 < /dev/null &
  sleep 20; tail -5 "runs/$name.log" ;;
collect)
  while pgrep -f "gpu_session.py" > /dev/null; do sleep 5; done
  report 12
  mkdir -p "$OUT/teacher" "$OUT/student"
  cp runs/teacher/compact/G_ema.safetensors runs/teacher/compact/D.safetensors runs/teacher/compact/state.json "$OUT/teacher/" 2>/dev/null
  cp runs/teacher/train_log.png "$OUT/teacher/" 2>/dev/null
  cp runs/student/student_ema_fp16.safetensors runs/student/train_log.png "$OUT/student/" 2>/dev/null
  cp runs/*.log "$OUT/" 2>/dev/null
  true ;;
*) sed -n 2,8p "$0"; exit 2 ;;
esac
