#!/usr/bin/env bash
# The two carries of a campaign lease (tools/gpu_campaign.sh), built here before the first call,
# because a lent machine goes back ~30 s after a call ends and there is no time between calls:
#   .carryA  identity_fp16.safetensors (dlib's ResNet for the loss) + train_256.npz  ~20 MB
#   .carryB  train_128.npz (WebP q60) + test_128/256.npz + eval_recognizer.safetensors ~44 MB
# Each travels with its own tree (64 MiB a call in all), data first: a model file the tree of a
# call leaves out is gone from the machine in that call (session 10 lost a start to it), so the
# call that starts the runs carries the campaign checkpoint itself:
#   call 1: DATA_ONLY=1 bash tools/device_tree.sh lean         (9 MB tree + .carryB)
#           run: bash tools/gpu_campaign.sh stage                    (carry .carryB)
#   call 2: bash tools/device_tree.sh restore; bash tools/device_tree.sh lean  (42 MB + .carryA)
#           run: bash tools/gpu_campaign.sh start SECS NAME..          (carry .carryA)
#   (every gpu_campaign.sh command first copies the carried .carry*/ files into runs/stage)
#   then watch / collect / fetch with the call-2 tree; `bash tools/device_tree.sh restore` after.
# Needs data/shards from `slimswap data build --videos ../shared/data/videos` (12 min on an
# AVX-512 2-core CPU, 25-30 on an AVX2 one).
set -euo pipefail
cd "$(dirname "$0")/.."
shards=${SHARDS:-data/shards}
for f in train_128 train_256 test_128 test_256; do
  [ -f "$shards/$f.npz" ] || { echo "missing $shards/$f.npz: run slimswap data build first" >&2; exit 2; }
done
rm -rf .carryA .carryB
mkdir -p .carryA .carryB
.venv/bin/python - <<'EOF'
import torch

from slimswap.nets.identity import DlibResNet, save_safetensors

save_safetensors(DlibResNet.from_dat(), ".carryA/identity_fp16.safetensors", dtype=torch.float16)
EOF
cp "$shards/train_256.npz" .carryA/
.venv/bin/python tools/reencode_shard.py "$shards/train_128.npz" .carryB/train_128.npz 60
cp "$shards/test_128.npz" "$shards/test_256.npz" models/eval_recognizer.safetensors .carryB/
du -cb .carryA/* | tail -1 | sed 's/total/.carryA bytes/'
du -cb .carryB/* | tail -1 | sed 's/total/.carryB bytes/'
