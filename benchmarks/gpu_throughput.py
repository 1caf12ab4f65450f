"""Swap-generator throughput on a CUDA GPU: fp16, channels_last, eager vs torch.compile.

    python3 benchmarks/gpu_throughput.py MODEL.safetensors [MODEL2 ...]
Times one forward pass (target crops + identities -> swaps) with CUDA events after warm-up,
median of repeats, on random inputs rotated among 4 sets; prints a markdown table.
"""

import itertools
import sys
import time

import numpy as np
import torch

from slimswap.evaluate.bench import time_calls
from slimswap.swap.weights import load_generator


def time_forward(fn, xs, es, repeats: int = 20) -> float:
    """Median seconds per forward (CUDA events, 3 warm-up calls), rotating the input sets."""
    calls = itertools.count()

    def step() -> None:
        i = next(calls)
        fn(xs[i % len(xs)], es[i % len(es)])

    return float(
        np.median(time_calls(step, warmup=3, repeats=repeats, budget_s=float("inf"), cuda=True))
    )


def main(paths: list[str]) -> None:
    torch.backends.cudnn.benchmark = True
    rows = []
    for path in paths:
        t0 = time.time()
        model = load_generator(path).cuda().half().eval().to(memory_format=torch.channels_last)
        load_s = time.time() - t0
        res = model.config.resolution
        variants = [("eager", model)]
        compiled = torch.compile(model)
        variants.append(("compile", compiled))
        for name, fn in variants:
            for batch in (1, 256, 1024):
                xs = [
                    torch.rand(batch, 3, res, res, device="cuda", dtype=torch.half)
                    .mul(2)
                    .sub(1)
                    .contiguous(memory_format=torch.channels_last)
                    for _ in range(4)
                ]
                es = [torch.randn(batch, 128, device="cuda", dtype=torch.half) for _ in range(4)]
                with torch.inference_mode():
                    t0 = time.time()
                    sec = time_forward(fn, xs, es, repeats=10 if batch > 1 else 30)
                rows.append(
                    (path.split("/")[-1], name, batch, sec * 1000, batch / sec, time.time() - t0)
                )
        rows.append((path.split("/")[-1], "load (s)", 0, load_s * 1000, 0, 0))
    print("| model | variant | batch | ms / call | faces/s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.3f} | {r[4]:,.0f} |")
    print(
        torch.cuda.get_device_name(),
        torch.__version__,
        "peak GiB",
        torch.cuda.max_memory_allocated() / 2**30,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
