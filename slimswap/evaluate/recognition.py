"""The evaluation-only recognizer as the swap evaluation uses it: verified, loaded, applied.

The generator's identity loss trains against dlib's network, so dlib's distance flatters the
learned swappers. `slimswap.nets.recognizer` is a second judge that no loss ever saw. Its
weights are listed in models/MANIFEST (name `eval_recognizer`) with their sha256, checked
here before loading, like `swap.registry` checks the swappers. A file given by hand (a
freshly trained run, or a random one in tests) is loaded too, and the report says that it is
not the listed one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from slimswap.errors import UserError
from slimswap.paths import models_dir

MANIFEST_NAME = "eval_recognizer"
CROP_SIZE = 128  # `align(frame, kps, 128)`: how the recognizer's training crops were cut


@dataclass
class EvalRecognizer:
    """The recognizer network with where it came from (for the report header)."""

    net: object  # slimswap.nets.recognizer.FaceRecognizer
    path: Path
    sha256: str
    listed: bool  # the MANIFEST's entry, hash verified
    metrics: dict = field(default_factory=dict)  # training-time verification (MANIFEST/file)
    device: str = "cpu"

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """(N, D) unit embeddings of uint8 (N, S, S, 3) aligned crops."""
        import torch

        from slimswap.train.recognizer import embed_crops

        if not len(crops):
            return np.zeros((0, self.net.config.embed_dim), np.float32)
        return embed_crops(self.net, crops, torch.device(self.device), batch=64)

    def embed_faces(self, frames: Sequence[np.ndarray], kps: Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings of the faces at `kps` (5 keypoints each) in full frames."""
        from slimswap.face.align import align

        return self.embed_crops(np.stack([align(f, k, CROP_SIZE)[0] for f, k in zip(frames, kps)]))

    def describe(self) -> str:
        where = (
            "models/MANIFEST entry, sha256 verified" if self.listed else "not the MANIFEST's entry"
        )
        return f"`{self.path.name}` (sha256 {self.sha256[:12]}, {where})"


def manifest_entry(manifest: Path) -> dict | None:
    """The recognizer's entry of a MANIFEST file (by name, or by mode "evaluation")."""
    if not manifest.is_file():
        return None
    try:
        models = json.loads(manifest.read_text()).get("models", [])
    except json.JSONDecodeError as exc:
        raise UserError(f"{manifest} is not valid JSON ({exc}); restore it with git") from None
    for entry in models:
        if entry.get("name") == MANIFEST_NAME or entry.get("mode") == "evaluation":
            return entry
    return None


def load_eval_recognizer(
    path: Path | None = None, device: str = "cpu", manifest: Path | None = None
) -> EvalRecognizer:
    """The listed recognizer (sha256 checked), or the file at `path`.

    Raises UserError, saying how to fix it, when nothing is listed, the listed file is
    missing, its hash does not match, or the file cannot be read.
    """
    from slimswap.files import sha256_file

    manifest = manifest or models_dir() / "MANIFEST"
    entry = manifest_entry(manifest)
    listed_path = (manifest.parent / entry["file"]).resolve() if entry else None
    if path is None:
        if entry is None:
            raise UserError(
                f"no {MANIFEST_NAME} is listed in {manifest}: train the evaluation recognizer "
                "(slimswap/train/recognizer.py) or pass --recognizer FILE"
            )
        path = listed_path
        if not path.is_file():
            raise UserError(
                f"evaluation recognizer missing: {path} (listed in {manifest}); restore it with git"
            )
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--recognizer {path}: file not found")
    digest = sha256_file(path)
    listed = listed_path is not None and path.resolve() == listed_path
    if listed and digest != entry.get("sha256"):
        raise UserError(
            f"evaluation recognizer {path} is corrupted (sha256 mismatch with {manifest}); restore it with git"
        )
    from safetensors import SafetensorError, safe_open

    from slimswap.nets.recognizer import load_recognizer

    try:
        net = load_recognizer(path, device)
        with safe_open(str(path), "pt") as f:
            file_metrics = json.loads((f.metadata() or {}).get("metrics", "{}"))
    except (SafetensorError, OSError, RuntimeError, KeyError, ValueError) as exc:
        # a truncated or foreign file: say which and why, in one line
        raise UserError(
            f"cannot load the evaluation recognizer {path}: {type(exc).__name__}: {exc}"
        ) from None
    listed_metrics = entry.get("metrics") if (listed and entry) else None
    metrics = listed_metrics or file_metrics
    return EvalRecognizer(net, path, digest, listed, metrics or {}, device)


def verification(embeddings: np.ndarray, labels: np.ndarray) -> dict:
    """LFW-style verification (AUC, best accuracy) of unit embeddings of labelled photos."""
    from slimswap.train.recognizer import verification_auc

    labels = np.asarray(labels)
    same = sum(int(n) * (int(n) - 1) // 2 for n in np.unique(labels, return_counts=True)[1])
    if same == 0 or len(np.unique(labels)) < 2:
        return {}
    return verification_auc(embeddings, labels, max_negatives=20_000)


def auc_summary(metrics: dict) -> str:
    """The verification AUCs found in a training-metrics dict, e.g. "test_128 0.981"."""
    parts = [
        f"{k} {v['auc']:.3f}" for k, v in metrics.items() if isinstance(v, dict) and "auc" in v
    ]
    return ", ".join(parts)
