"""Generator weights on disk: safetensors with the network's config in the metadata.

Saving the config next to the tensors means loading rebuilds exactly the network that was
trained (STYLE.md section 4) and a file is self-describing; the sha256 in models/MANIFEST is
checked before anything is deserialised.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from slimswap.errors import UserError
from slimswap.files import atomic_write, verify_sha256


def _arch_of(model: torch.nn.Module) -> str:
    return getattr(model, "arch", type(model).__name__)


def save_generator(
    model: torch.nn.Module, path: str | Path, dtype: torch.dtype = torch.float16
) -> Path:
    """Write weights (cast to dtype) + {arch, config} metadata atomically."""
    path = Path(path)
    tensors = {
        k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
        for k, v in model.state_dict().items()
    }
    meta = {"arch": _arch_of(model), "config": model.config.to_json()}
    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def build_generator(arch: str, config_json: str) -> torch.nn.Module:
    """Construct an untrained generator from its arch name and config JSON.

    Only the warp-guided generator (v2 and later) is built; the v1 networks (128 px,
    `TeacherGenerator` / `StudentGenerator`) were removed with their released files.
    """
    from slimswap.nets import warp_generator

    if arch == "WarpSwapGenerator":
        return warp_generator.WarpSwapGenerator(
            warp_generator.SwapGeneratorConfig.from_json(config_json)
        )
    if arch in ("TeacherGenerator", "StudentGenerator"):
        raise UserError(
            f"{arch} is a v1 (128 px) model, which this version no longer runs; "
            "use the released models (slimswap models)"
        )
    raise UserError(f"unknown generator architecture {arch!r} in weight file")


def load_generator(
    path: str | Path, expected_sha256: str | None = None, device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """Load a generator saved by save_generator; refuse a file whose hash does not match."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file not found: {path}")
    if expected_sha256 is not None:
        verify_sha256(path, expected_sha256)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (not a dict)
    except Exception as exc:  # noqa: BLE001 (safetensors raises several types for a damaged header)
        raise UserError(f"cannot read model file {path}: {exc}") from None
    if "arch" not in meta or "config" not in meta:
        raise UserError(f"model file {path} lacks its arch/config metadata")
    model = build_generator(meta["arch"], meta["config"])
    state = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    model.load_state_dict(state)
    return model.to(device).eval()


SAFETENSORS_PRECISION = {"F32": "fp32", "F16": "fp16", "BF16": "bf16"}


def stored_precision(path: str | Path) -> str:
    """The dtype the floating-point weights are stored in (fp32, fp16 or bf16)."""
    with safe_open(str(path), framework="pt", device="cpu") as fh:
        dtypes = {fh.get_slice(k).get_dtype() for k in fh.keys()}  # noqa: SIM118 (not a dict)
    floats = sorted(SAFETENSORS_PRECISION[d] for d in dtypes if d in SAFETENSORS_PRECISION)
    return "+".join(floats) or "none"


def read_metadata(path: str | Path) -> dict:
    with safe_open(str(path), framework="pt", device="cpu") as fh:
        meta = dict(fh.metadata() or {})
    if "config" in meta:
        meta["config"] = json.loads(meta["config"])
    return meta
