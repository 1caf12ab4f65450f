"""Export a generator to ONNX (fp32 and fp16) and check it against torch.

Inputs `target` (N,3,S,S float in [-1,1]) and `identity` (N,128 dlib descriptor), output `swap`
(N,3,S,S). Batch is dynamic. The fp16 file comes from ONNX Runtime's own float16 converter,
keeping inputs/outputs in fp32 so callers never change.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from slimswap.files import atomic_write


def to_onnx(model: torch.nn.Module, path: str | Path, opset: int = 17) -> Path:
    """Trace the generator to ONNX at its own resolution; written atomically."""
    path = Path(path)
    res = int(model.config.resolution)
    model = model.float().eval().cpu()
    x = torch.zeros(1, 3, res, res).uniform_(-1, 1)
    e = torch.randn(1, 128)
    with atomic_write(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x, e),
            str(tmp),
            input_names=["target", "identity"],
            output_names=["swap"],
            dynamic_axes={"target": {0: "n"}, "identity": {0: "n"}, "swap": {0: "n"}},
            opset_version=opset,
            dynamo=False,
        )
    return path


def to_fp16(src: str | Path, dst: str | Path) -> Path:
    """fp16 weights and activations; fp32 at the boundary (for GPU runtimes)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    dst = Path(dst)
    with atomic_write(dst) as tmp:
        onnx.save(model, str(tmp))
    return dst


def run_onnx(
    path: str | Path, target: np.ndarray, identity: np.ndarray, threads: int | None = None
) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(
        None, {"target": target.astype(np.float32), "identity": identity.astype(np.float32)}
    )[0]


def psnr_pm1(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two images in [-1, 1] (peak-to-peak 2)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(4.0 / mse)


def validate(
    model: torch.nn.Module, onnx_path: str | Path, target: np.ndarray, identity: np.ndarray
) -> dict:
    """Max abs error and PSNR of the ONNX output against torch fp32 on the same inputs."""
    with torch.no_grad():
        ref = model.float().eval()(torch.from_numpy(target), torch.from_numpy(identity)).numpy()
    out = run_onnx(onnx_path, target, identity)
    return {"max_abs_error": float(np.abs(out - ref).max()), "psnr_db": psnr_pm1(out, ref)}
