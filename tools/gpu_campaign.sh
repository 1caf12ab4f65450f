#!/usr/bin/env bash
# The training campaign on a lent GPU machine (issue 20; commands and results in
# benchmarks/RESULTS.md). Every step is one short call; training runs in the background
# (setsid) between calls, so a warm machine keeps training while the session waits.
#   bash tools/gpu_campaign.sh stage             # copy .carry*/* into runs/stage (call by call)
#   bash tools/gpu_campaign.sh smoke             # every training path for a few steps
#   bash tools/gpu_campaign.sh start SECS NAME.. # campaign runs side by side on GPU 0; returns
#                                                # once each has logged its first steps
#   bash tools/gpu_campaign.sh watch SECS        # wait, then logs and the latest samples to $OUT
#   KEEP=1 bash tools/gpu_campaign.sh watch SECS # ... and each run's (KEEP=a,b: those runs') last compact checkpoint
#                                                # instead of the samples (resume from it)
#   bash tools/gpu_campaign.sh stop NAME         # end run NAME at its next 100-step mark
#   bash tools/gpu_campaign.sh collect NAME..    # wait for the runs; EMA weights, compact
#                                                # checkpoint, scores and logs to $OUT, as
#                                                # much as one call brings back (64 MiB)
#   bash tools/gpu_campaign.sh fetch NAME..      # G, D and state of each run (EMA=1: its EMA too)
# Needs the shards, identity_fp16.safetensors and eval_recognizer.safetensors (the runs' closing
# scores read it; the lean tree leaves models/'s behind) in runs/stage, staged over two calls:
# `bash tools/prepare_carry.sh` builds both carries (.carryA, .carryB) and says which tree goes
# with which call. Build them before the first call: a lent machine goes back ~30 s after a
# call ends (session 9 lost its first staging that way), and a fresh one starts bare.
set -uo pipefail
export PYTHONUNBUFFERED=1 STAGE=runs/stage NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
RECOGNIZER=models/eval_recognizer.safetensors
[ -f "$RECOGNIZER" ] || RECOGNIZER=$STAGE/eval_recognizer.safetensors
export RECOGNIZER BATCH=${BATCH:-64} COMPILE=0
OUT=${OUT:-/tmp/out}
mkdir -p runs/stage "$OUT"
# every carried folder (.carryA, .carryB of tools/prepare_carry.sh) is staged by any command
for f in .carry*/*.npz .carry*/*.safetensors; do [ -f "$f" ] && cp -n "$f" runs/stage/; done
report() {
  for f in runs/campaign_*.log; do [ -f "$f" ] && { echo "== $f"; grep -v Warning "$f" | tail -n "${1:-4}"; }; done
  nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader
}
running() { pgrep -f "gpu_session.py campaign" > /dev/null; }
case "${1:-}" in
stage)
  ls -la runs/stage; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader ;;
smoke)
  python3 -c "import torch; print('torch', torch.__version__, 'gpus', torch.cuda.device_count())"
  if ! timeout 300 python3 tools/gpu_session.py smoke > runs/smoke.log 2>&1; then
    tail -40 runs/smoke.log; cp runs/smoke.log "$OUT/"; exit 1
  fi
  grep -E "ok in|img/s|smoke" runs/smoke.log | tail -6; cp runs/smoke.log "$OUT/" ;;
start)
  secs=$2; shift 2
  for v in "$@"; do
    setsid nohup python3 tools/gpu_session.py campaign "$v" "$secs" > "runs/campaign_$v.log" 2>&1 < /dev/null &
  done
  # the first steps prove every run works: a crash shows in this call, not at minute nine
  for _ in $(seq 60); do
    sleep 5; ok=1
    for v in "$@"; do grep -q "img/s" "runs/campaign_$v.log" || ok=0; done
    [ $ok = 1 ] && break
    for v in "$@"; do grep -q Traceback "runs/campaign_$v.log" && { tail -30 "runs/campaign_$v.log"; exit 1; }; done
  done
  report 3 ;;
watch)
  t=${2:-60}; end=$((SECONDS + t))
  while [ $SECONDS -lt $end ] && running; do sleep 5; done
  report 4
  for d in runs/campaign_*/; do
    n=$(basename "$d")
    # KEEP=1: every run; KEEP=a,b: those runs (4 files a run and 8 a call: two runs at most)
    if [ "${KEEP:-0}" = 1 ] || [[ ",${KEEP:-}," == *",${n#campaign_},"* ]]; then
      # the run's last compact checkpoint (written at every checkpoint): if the machine is
      # taken back before collect, this is what continues (session 7 lost two runs whole);
      # 4 files a run, 8 come back a call: samples and scores stay for collect
      for f in G D G_ema; do
        [ -f "$d/compact/$f.safetensors" ] && cp "$d/compact/$f.safetensors" "$OUT/${n#campaign_}_$f.safetensors"
      done
      [ -f "$d/compact/state.json" ] && cp "$d/compact/state.json" "$OUT/${n#campaign_}_state.json"
      continue
    fi
    [ "${KEEP:-0}" != 0 ] && continue  # the other runs' samples would pass the 8 files
    s=$(ls "$d"samples_*.png 2>/dev/null | tail -1)
    [ -n "$s" ] && cp "$s" "$OUT/${n}_samples.png"
    [ -f "$d/scores.json" ] && cp "$d/scores.json" "$OUT/${n}_scores.json"
  done
  true ;;
stop)
  touch "runs/campaign_$2/STOP"; echo "asked $2 to stop" ;;
collect)
  shift
  while running; do sleep 3; done
  report 6
  tar czf "$OUT/campaign_logs.tgz" runs/campaign_*.log runs/campaign_*/scores.json runs/campaign_*/train_log.csv runs/campaign_*/samples_*.png runs/campaign_*/compact/state.json 2>/dev/null
  # a call brings back 64 MiB and 8 files at most (session 5 lost a file to it): every run's EMA
  # first (what the evaluation scores), then the G and D that continue them, while it fits
  budget=$((60 * 1024 * 1024 - $(stat -c %s "$OUT/campaign_logs.tgz"))) files=1
  for pair in teacher_ema_fp16: compact/G:_G compact/D:_D; do
    for v in "$@"; do
      src="runs/campaign_$v/${pair%%:*}.safetensors"; [ -f "$src" ] || continue
      size=$(stat -c %s "$src")
      if [ "$size" -le "$budget" ] && [ $files -lt 8 ]; then
        cp "$src" "$OUT/$v${pair##*:}.safetensors"; budget=$((budget - size)); files=$((files + 1))
      else
        echo "left behind (bash tools/gpu_campaign.sh fetch $v): $src"
      fi
    done
  done
  ls -la "$OUT"
  true ;;
fetch)
  # what collect left behind: G and D (or, with EMA=1, also the EMA) of each run named
  shift
  for v in "$@"; do
    d=runs/campaign_$v
    [ "${EMA:-0}" = 1 ] && cp "$d/teacher_ema_fp16.safetensors" "$OUT/$v.safetensors"
    cp "$d/compact/G.safetensors" "$OUT/${v}_G.safetensors"
    cp "$d/compact/D.safetensors" "$OUT/${v}_D.safetensors"
    cp "$d/compact/state.json" "$OUT/${v}_state.json"
  done
  ls -la "$OUT" ;;
*) sed -n 2,12p "$0"; exit 2 ;;
esac
