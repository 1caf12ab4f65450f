#!/usr/bin/env bash
# The command lines behind benchmarks/RESULTS.md. Each run writes JSON + markdown + PNG charts
# (with device, library versions and the command) under benchmarks/bench or benchmarks/eval.
#
#   benchmarks/run_bench.sh quick   # CPU, few repeats, bundled clip only (about a minute)
#   benchmarks/run_bench.sh cpu     # CPU, full repeats, bundled clip + a ../shared talking head
#   benchmarks/run_bench.sh cuda    # GPU: torch fp16/bf16, torch.compile, CUDA graphs, ONNX Runtime
#   benchmarks/run_bench.sh eval    # robustness subsets + temporal stability (CPU)
#
# PYTHON picks the interpreter (default: .venv/bin/python if present, else python3);
# SLIMSWAP_SHARED points at the folder holding data/ (default: ../shared).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
SHARED_DATA="${SLIMSWAP_SHARED:-../shared}/data"
slimswap() { "$PYTHON" -m slimswap.cli "$@"; }

case "${1:-quick}" in
    quick)
        slimswap bench --quick --device cpu --out benchmarks/bench
        ;;
    cpu)
        slimswap bench --device cpu --out benchmarks/bench
        ;;
    cuda)
        slimswap bench --device cuda --out benchmarks/bench
        ;;
    eval)
        slimswap eval robustness --shard data/shards/test_128.npz --pairs 100 --out benchmarks/eval
        slimswap eval temporal --every 10 --out benchmarks/eval
        if [[ -f "$SHARED_DATA/videos/liveportrait_driving_d12.mp4" ]]; then
            slimswap eval temporal --video "$SHARED_DATA/videos/liveportrait_driving_d12.mp4" --every 10 \
                --out benchmarks/eval/d12
        fi
        ;;
    *)
        echo "usage: $0 [quick|cpu|cuda|eval]" >&2
        exit 2
        ;;
esac
