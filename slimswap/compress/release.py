"""Put a trained model into models/ and models/MANIFEST (hash, size, params, MACs, provenance)."""

from __future__ import annotations

from pathlib import Path

import torch

from slimswap.face.align import TEMPLATE_NAME
from slimswap.files import sha256_file
from slimswap.paths import models_dir
from slimswap.swap.neural import PM1
from slimswap.swap.registry import write_manifest_entry
from slimswap.swap.weights import save_generator, stored_precision

NORMALISATION = f"{PM1.name}; identity = dlib 128-D descriptor (L2-normalised inside the net)"


def model_macs(model: torch.nn.Module) -> int:
    import torch_pruning as tp

    res = int(model.config.resolution)
    macs, _ = tp.utils.count_ops_and_params(
        model, example_inputs=(torch.zeros(1, 3, res, res), torch.zeros(1, 128))
    )
    return int(macs)


def list_file(path: Path, name: str, mode: str, backend: str, precision: str, **fields) -> dict:
    """Add (or replace) the manifest entry of a file in models/: its hash, size, the alignment
    template and normalisation this code uses, and `fields` (resolution, params, macs,
    provenance, metrics)."""
    entry = {
        "name": name,
        "file": path.name,
        "sha256": sha256_file(path),
        "mode": mode,
        "backend": backend,
        "precision": precision,
        "bytes": path.stat().st_size,
        "template": TEMPLATE_NAME,
        "normalisation": NORMALISATION,
        "metrics": {},
        **fields,
    }
    write_manifest_entry(entry)
    return entry


def release_torch(
    model: torch.nn.Module, name: str, mode: str, provenance: dict, metrics: dict | None = None
) -> dict:
    """Save fp16 safetensors under models/ and list it in the manifest."""
    path = models_dir() / f"{name}.safetensors"
    save_generator(model, path, dtype=torch.float16)
    return list_file(
        path,
        name,
        mode,
        "torch",
        stored_precision(path),
        resolution=int(model.config.resolution),
        params=sum(p.numel() for p in model.parameters()),
        macs=model_macs(model),
        provenance=provenance,
        metrics=metrics or {},
    )


def release_exports(model: Path, name: str, report: dict, command: str) -> list[dict]:
    """List `compress export`'s three files (<name>_fp32/_fp16/_int8.onnx) in the manifest.

    Mode, parameters, MACs and provenance come from the torch model's own entry (the file
    `model`), so the exports say what they were exported from; `report` (export_all's
    validation numbers) goes into their metrics.
    """
    from slimswap.errors import UserError
    from slimswap.swap.registry import read_manifest

    source = next((e for e in read_manifest() if e.path.resolve() == Path(model).resolve()), None)
    if source is None:
        raise UserError(f"{model} is not listed in models/MANIFEST: release it first")
    entries = []
    for precision in ("fp32", "fp16", "int8"):
        numbers = report[precision]
        provenance = {**source.provenance, "exported_by": command}
        metrics = {f"{precision}_vs_torch_psnr_db": round(numbers["psnr_vs_torch_db"], 2)}
        if precision == "int8":
            provenance["quantization"] = (
                "ONNX Runtime static QDQ, Conv only, per-channel 7-bit weights (reduce_range), "
                f"uint8 activations; float: {len(report['excluded_nodes'])} sensitive nodes"
            )
            metrics["int8_vs_fp32_psnr_db"] = round(numbers["psnr_vs_onnx_fp32_db"], 2)
        path = models_dir() / numbers["file"]
        entries.append(
            list_file(
                path,
                f"{name}_{precision}",
                source.mode,
                "onnx",
                precision,
                resolution=source.resolution,
                params=source.params,
                macs=source.macs,
                provenance=provenance,
                metrics=metrics,
            )
        )
    return entries
