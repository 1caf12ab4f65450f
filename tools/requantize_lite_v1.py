"""Re-quantize the released v1 lite model with 7-bit weights (issue 16: INT8 on CPUs without VNNI).

The released `lite_128_int8.onnx` was quantized with 8-bit weights, whose int16 partial sums
saturate on AVX2 CPUs without VNNI (25.6 dB instead of 45 dB against fp32 on an AMD EPYC).
This re-quantizes its fp32 twin with the toolkit's current settings (`reduce_range`, the v1
model's float layers), calibrated on real aligned faces of the validation split:

    python tools/requantize_lite_v1.py data/shards/val_128.npz models/lite_128_int8.onnx
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from slimswap.compress.quantize import quantize_int8
from slimswap.swap.neural import to_model_input
from slimswap.train.shards import load_shard

V1_FLOAT_CONV_PARTS = ("/stem/", "/fuse32/", "/out/", "/fusion/")  # the v1 export's list


def main(shard_path: str, out: str, faces: int = 64) -> None:
    shard = load_shard(shard_path)
    idx = np.random.default_rng(0).choice(len(shard), size=min(faces, len(shard)), replace=False)
    calib = {
        "target": to_model_input(shard.decode(idx)),
        "identity": shard.embeddings[idx].astype(np.float32),
    }
    fp32 = Path("models/lite_128_fp32.onnx")
    path, floats = quantize_int8(fp32, out, calib, conv_parts=V1_FLOAT_CONV_PARTS)
    print(path, f"{len(floats)} nodes kept float")


if __name__ == "__main__":
    main(*sys.argv[1:3])
