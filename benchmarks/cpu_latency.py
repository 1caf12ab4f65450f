"""Per-face latency of the ONNX swap models on this CPU (batch 1, ONNX Runtime), and cold load.

    python benchmarks/cpu_latency.py models/lite_128_int8.onnx models/lite_128_fp32.onnx
Median and p95 of 200 calls after 20 warm-up calls, on real-valued random inputs.
"""

import sys
import time

import numpy as np
import onnxruntime as ort

from slimswap.evaluate.bench import percentiles_ms, time_calls


def main(paths: list[str]) -> None:
    print("| model | threads | load ms | p50 ms | p95 ms |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1, 3, 128, 128)).astype(np.float32)
    e = rng.normal(0, 0.1, (1, 128)).astype(np.float32)
    for path in paths:
        for threads in (1, 2):
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            t = time.perf_counter()
            sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            load_ms = (time.perf_counter() - t) * 1000
            call = lambda sess=sess: sess.run(None, {"target": x, "identity": e})
            p50, p95 = percentiles_ms(time_calls(call, 20, 200, float("inf"), cuda=False))
            print(f"| {path.split('/')[-1]} | {threads} | {load_ms:.0f} | {p50:.2f} | {p95:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
