#!/usr/bin/env bash
# The device tool sends the whole tracked tree with every call (64 MiB at most, carried paths
# included), and models/ (with the campaign checkpoint) is more than that. Before a series of GPU calls:
#   bash tools/device_tree.sh lean      # untrack files a GPU run does not read (ONNX exports,
#                                       # the evaluation recognizer unless KEEP_RECOGNIZER=1,
#                                       # the campaign checkpoint with DROP_CAMPAIGN=1, every
#                                       # model the campaign reads with DATA_ONLY=1)
# and after it, before anything is committed:
#   bash tools/device_tree.sh restore   # put them back in the index, unchanged
# Nothing is deleted: the files stay on disk, only git's index and .git/info/exclude change.
set -euo pipefail
cd "$(dirname "$0")/.."
files=(models/*.onnx)
[ "${KEEP_RECOGNIZER:-0}" = 1 ] || files+=(models/eval_recognizer.safetensors)
# a frame-path benchmark (tools/gpu_e2e.sh) reads no resume checkpoint: DROP_CAMPAIGN=1;
# the campaign reads its own EMA, not the released teacher (tools/gpu_session.py)
if [ "${DATA_ONLY:-0}" = 1 ]; then
  # a call that only stages data (tools/prepare_carry.sh) reads no model file: 9 MB left; the
  # machine drops what this tree leaves out, so the next call must carry the models again
  files+=(models/teacher_campaign/* models/teacher_256.safetensors)
elif [ "${DROP_CAMPAIGN:-0}" = 1 ]; then
  files+=(models/teacher_campaign/*)
elif [ -f models/teacher_campaign/G_ema.safetensors ]; then
  files+=(models/teacher_256.safetensors)
fi
case "${1:-}" in
lean)
  git rm --cached -q "${files[@]}"
  for f in "${files[@]}"; do echo "/$f"; done >> .git/info/exclude
  echo "lean: $(git ls-files | xargs du -cb 2>/dev/null | tail -1 | cut -f1) bytes tracked" ;;
restore)
  git reset -q -- models/
  grep -v '^/models/' .git/info/exclude > .git/info/exclude.tmp || true
  mv .git/info/exclude.tmp .git/info/exclude
  git status --short models/ ;;
*) sed -n 2,9p "$0"; exit 2 ;;
esac
