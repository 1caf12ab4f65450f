"""Put a trained model into models/ and models/MANIFEST (hash, size, params, MACs, provenance)."""

from __future__ import annotations

from pathlib import Path

import torch

from slimswap.paths import MODELS_DIR
from slimswap.swap.registry import write_manifest_entry
from slimswap.swap.weights import load_generator, save_generator, sha256_file

TEMPLATE = "slimswap 5-point (dlib chip frame, padding 0.25), see slimswap/face/align.py"
NORMALISATION = "RGB in [-1, 1]; identity = dlib 128-D descriptor (L2-normalised inside the net)"


def model_macs(model: torch.nn.Module) -> int:
    import torch_pruning as tp

    res = int(model.config.resolution)
    macs, _ = tp.utils.count_ops_and_params(model, example_inputs=(torch.zeros(1, 3, res, res), torch.zeros(1, 128)))
    return int(macs)


def release_torch(model: torch.nn.Module, name: str, mode: str, provenance: dict, metrics: dict | None = None) -> dict:
    """Save fp16 safetensors under models/ and list it in the manifest."""
    path = MODELS_DIR / f"{name}.safetensors"
    save_generator(model, path, dtype=torch.float16)
    entry = {
        "name": name, "file": path.name, "sha256": sha256_file(path), "mode": mode, "backend": "torch",
        "resolution": int(model.config.resolution), "params": sum(p.numel() for p in model.parameters()),
        "macs": model_macs(model), "bytes": path.stat().st_size, "template": TEMPLATE,
        "normalisation": NORMALISATION, "provenance": provenance, "metrics": metrics or {},
    }
    write_manifest_entry(entry)
    return entry


def release_onnx(path: Path, name: str, mode: str, params: int, macs: int, resolution: int, provenance: dict, metrics: dict | None = None) -> dict:
    entry = {
        "name": name, "file": path.name, "sha256": sha256_file(path), "mode": mode, "backend": "onnx",
        "resolution": resolution, "params": params, "macs": macs, "bytes": path.stat().st_size,
        "template": TEMPLATE, "normalisation": NORMALISATION, "provenance": provenance, "metrics": metrics or {},
    }
    write_manifest_entry(entry)
    return entry


def reload(name: str) -> torch.nn.Module:
    return load_generator(MODELS_DIR / f"{name}.safetensors")
