"""Turn a trained generator into runtime files: ONNX fp32, fp16 and mixed-precision INT8.

Each file is validated against the torch model on real faces with real warp guides (max abs
error and PSNR of the outputs, over the whole crop and inside the face region), so a broken
export or a quantization that costs too much shows up as a number. Calibration and check
faces are disjoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from slimswap.compress import export, quantize


def export_all(
    model: torch.nn.Module,
    name: str,
    out_dir: Path,
    faces: Sequence[Path],
    n_calib: int = 128,
    n_check: int = 32,
) -> dict:
    """Write <name>_fp32/_fp16/_int8.onnx into out_dir; return validation numbers per file."""
    from slimswap.compress.data import face_inputs, split

    out_dir.mkdir(parents=True, exist_ok=True)
    res, openings = int(model.config.resolution), bool(model.config.target_openings)
    inputs = face_inputs(faces, n_calib + n_check, res, seed=1, openings=openings)
    calib, check = split(inputs, n_calib)
    fp32 = export.to_onnx(model, out_dir / f"{name}_fp32.onnx")
    fp16 = export.to_fp16(fp32, out_dir / f"{name}_fp16.onnx")
    int8, excluded = quantize.quantize_int8(fp32, out_dir / f"{name}_int8.onnx", calib)
    for path in (fp16, int8):
        export.stamp(path, export.guide_metadata(model))
    ref = export.run_torch(model, check)
    face = export.face_weight(check)
    report = {
        "inputs": list(export.input_names(model)),
        "faces": {
            "shards": [str(p) for p in faces],
            "calibration": len(calib["target"]),
            "check": len(check["target"]),
        },
        "float_conv_parts": list(quantize.SENSITIVE_CONV_PARTS),
        "excluded_nodes": excluded,
    }
    outs = {}
    for key, path in (("fp32", fp32), ("fp16", fp16), ("int8", int8)):
        out = export.run_onnx(path, check)
        outs[key] = out
        report[key] = {
            "file": path.name,
            "bytes": path.stat().st_size,
            "max_abs_error_vs_torch": float(np.abs(out - ref).max()),
            "psnr_vs_torch_db": export.psnr_pm1(out, ref),
            "face_psnr_vs_torch_db": export.psnr_pm1(out, ref, face),
        }
    report["int8"]["psnr_vs_onnx_fp32_db"] = export.psnr_pm1(outs["int8"], outs["fp32"])
    report["int8"]["face_psnr_vs_onnx_fp32_db"] = export.psnr_pm1(outs["int8"], outs["fp32"], face)
    return report
