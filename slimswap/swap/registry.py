"""Which swappers exist and how to load them: a plain dict plus models/MANIFEST.

models/MANIFEST is JSON: {"models": [{name, file, sha256, mode, backend, resolution, params,
macs, template, normalisation, provenance, metrics, ...}]}. Every learned model is listed
there with its full sha256, which is checked before the weights are read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from slimswap.errors import UserError
from slimswap.paths import MODELS_DIR
from slimswap.swap.base import Swapper

MODES = ("auto", "quality", "lite", "classic")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    file: str
    sha256: str
    mode: str  # quality | lite
    backend: str  # torch | onnx
    resolution: int
    params: int
    raw: dict

    @property
    def path(self) -> Path:
        return MODELS_DIR / self.file


def manifest_path() -> Path:
    return MODELS_DIR / "MANIFEST"


def read_manifest(include_analysis: bool = False) -> list[ModelEntry]:
    """The swap models listed in models/MANIFEST.

    Entries with mode "analysis" (the MediaPipe face-analysis nets, loaded by
    slimswap.face.detect_mediapipe) are left out unless `include_analysis`, so nothing that
    enumerates swappers (modes, bench, UI) ever takes them for one.
    """
    path = manifest_path()
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); restore it with `git checkout -- {path}`") from None
    return [
        ModelEntry(e["name"], e["file"], e["sha256"], e["mode"], e["backend"], int(e["resolution"]), int(e.get("params", 0)), e)
        for e in data.get("models", [])
        if include_analysis or e["mode"] != "analysis"
    ]


def write_manifest_entry(entry: dict) -> None:
    """Add or replace one model entry (by name), keeping the others."""
    path = manifest_path()
    data = json.loads(path.read_text()) if path.is_file() else {"models": []}
    data["models"] = [e for e in data["models"] if e["name"] != entry["name"]] + [entry]
    tmp = path.with_name("MANIFEST.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def available_modes() -> list[str]:
    return sorted({e.mode for e in read_manifest() if e.path.is_file()})


def resolve_mode(mode: str, device: str) -> str:
    """`auto` means lite where it exists (fast everywhere), else quality, else classic."""
    if mode not in MODES:
        raise UserError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode != "auto":
        return mode
    have = available_modes()
    for m in ("lite", "quality"):
        if m in have:
            return m
    return "classic"


def _entry_for(mode: str, device: str) -> ModelEntry:
    entries = [e for e in read_manifest() if e.mode == mode]
    if not entries:
        raise UserError(f"no {mode} model is listed in {manifest_path()}; use --mode classic")
    # lite on CPU runs the ONNX (INT8) file; everything else prefers torch weights.
    prefer = "onnx" if (mode == "lite" and device == "cpu") else "torch"
    entries.sort(key=lambda e: e.backend != prefer)
    return entries[0]


def load_swapper(mode: str = "auto", device: str = "cpu") -> Swapper:
    """Build the swapper for a mode; learned weights are hash-checked first."""
    mode = resolve_mode(mode, device)
    if mode == "classic":
        from slimswap.swap.classic import ClassicSwapper

        return ClassicSwapper()
    entry = _entry_for(mode, device)
    if not entry.path.is_file():
        raise UserError(f"model file missing: {entry.path} (listed in models/MANIFEST); restore it with git")
    from slimswap.swap.weights import sha256_file

    if entry.backend == "onnx":
        if sha256_file(entry.path) != entry.sha256:
            raise UserError(f"model file {entry.path} is corrupted (sha256 mismatch); restore it with git")
        from slimswap.swap.neural import OnnxSwapper

        return OnnxSwapper(entry.path, name=entry.name, device=device)
    from slimswap.swap.neural import TorchSwapper
    from slimswap.swap.weights import load_generator

    model = load_generator(entry.path, expected_sha256=entry.sha256)
    return TorchSwapper(model, name=entry.name, device=device)
