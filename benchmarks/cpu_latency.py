"""Per-face latency of the ONNX swap models on this CPU (batch 1, ONNX Runtime), and cold load.

    python benchmarks/cpu_latency.py models/lite_256_int8.onnx models/lite_256_fp32.onnx
Median and p95 of 200 calls after 20 warm-up calls, on random inputs of each model's own
input shapes (target crop, guide and identity for the warp-guided models).
"""

import sys
import time

import numpy as np
import onnxruntime as ort

from slimswap.evaluate.bench import percentiles_ms, time_calls


def random_feed(sess: ort.InferenceSession, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Batch-1 inputs in the models' ranges: images in [-1, 1], guide region in [0, 1]."""
    feed = {}
    for inp in sess.get_inputs():
        shape = [1 if not isinstance(d, int) else d for d in inp.shape]
        x = rng.uniform(-1, 1, shape) if inp.name != "identity" else rng.normal(0, 0.1, shape)
        if inp.name == "guide":
            x[:, 3:] = (x[:, 3:] + 1) / 2
        feed[inp.name] = x.astype(np.float32)
    return feed


def main(paths: list[str]) -> None:
    print("| model | threads | load ms | p50 ms | p95 ms |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for path in paths:
        for threads in (1, 2):
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            t = time.perf_counter()
            sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            load_ms = (time.perf_counter() - t) * 1000
            feed = random_feed(sess, rng)
            call = lambda sess=sess, feed=feed: sess.run(None, feed)
            p50, p95 = percentiles_ms(time_calls(call, 20, 200, float("inf"), cuda=False))
            print(f"| {path.split('/')[-1]} | {threads} | {load_ms:.0f} | {p50:.2f} | {p95:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
