"""Turn a trained generator into runtime files: ONNX fp32, fp16 and mixed-precision INT8.

Each file is validated against the torch model on real faces (max abs error and PSNR of the
outputs) so a broken export or a quantization that costs too much shows up as a number.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from slimswap.compress import export, quantize


def export_all(
    model: torch.nn.Module,
    name: str,
    out_dir: Path,
    calib_shard: Path,
    n_calib: int = 128,
    n_check: int = 32,
) -> dict:
    """Write <name>_fp32/_fp16/_int8.onnx into out_dir; return validation numbers per file."""
    from slimswap.compress.data import real_arrays
    from slimswap.swap.neural import to_model_input

    out_dir.mkdir(parents=True, exist_ok=True)
    crops, _, other = real_arrays(calib_shard, n_calib + n_check, seed=1)
    calib_crops, calib_ids = crops[:n_calib], other[:n_calib]
    x = to_model_input(crops[n_calib:])
    e = other[n_calib:]
    fp32 = export.to_onnx(model, out_dir / f"{name}_fp32.onnx")
    fp16 = export.to_fp16(fp32, out_dir / f"{name}_fp16.onnx")
    int8, excluded = quantize.quantize_int8(
        fp32, out_dir / f"{name}_int8.onnx", calib_crops, calib_ids
    )
    with torch.no_grad():
        ref = model.float().eval()(torch.from_numpy(x), torch.from_numpy(e)).numpy()
    report = {"excluded_nodes": excluded}
    outs = {}
    for key, path in (("fp32", fp32), ("fp16", fp16), ("int8", int8)):
        out = export.run_onnx(path, x, e)
        outs[key] = out
        report[key] = {
            "file": path.name,
            "bytes": path.stat().st_size,
            "max_abs_error_vs_torch": float(np.abs(out - ref).max()),
            "psnr_vs_torch_db": export.psnr_pm1(out, ref),
        }
    report["int8"]["psnr_vs_onnx_fp32_db"] = export.psnr_pm1(outs["int8"], outs["fp32"])
    return report
