"""The parameters of a data build (`BuildConfig`, all recorded in its manifest.json), what a
build returns, and the record of one input image: what every step of the build shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from slimswap.errors import UserError
from slimswap.face.align import TEMPLATE_5

MAIN = "main"  # the group of the training inputs (else the name of an extra test set)
# Inter-ocular distance of the template in units of the crop side (about 0.35).
TEMPLATE_EYE_GAP = float(TEMPLATE_5[1, 0] - TEMPLATE_5[0, 0])


@dataclass(frozen=True)
class BuildConfig:
    """Parameters of one shard build; all of them are recorded in manifest.json."""

    sizes: tuple[int, ...] = (128, 256)  # crop sides; the first gets every face
    codec: str = "webp"  # "webp" or "jpg" (both decode with plain opencv)
    quality: int = 88  # WebP; train_128 on LFW + CelebA subset: 39.2 MB (q90: 43.3, q80 lower)
    # A crop larger than sizes[0] is made only when the source inter-ocular distance is at
    # least size * TEMPLATE_EYE_GAP * min_iod_factor px, so upsampling stays mild.
    min_iod_factor: float = 0.8
    test_identities: int = 120  # held out, drawn from identities with >= test_min_images faces
    test_min_images: int = 3
    val_identities: int = 50  # drawn from identities with >= val_min_images faces
    val_min_images: int = 2
    split_salt: str = "slimswap-split-v1"  # the sha256 of salt:identity orders identities
    # Identities whose mean embedding lies this close to a held-out identity's are moved to
    # test (the same person filed under two names, e.g. LFW and the deepface test set).
    # Measured: known duplicates 0.26-0.35 apart; at 0.5 some 900 look-alikes moved.
    leak_threshold: float = 0.36
    detect_max_side: int = 1024  # larger frames are detected on a downscaled copy
    upsample_retry_max_side: int = 800  # no face found: retry with 2x upsampling up to this size
    workers: int = 2
    chunk_images: int = 256  # images per cache file
    # train_<sizes[0]> must travel to the GPU machine with the code (re-encoded smaller for the
    # 64 MiB carry by tools/reencode_shard.py); 50, not 45, since it carries the mesh's points too
    max_train_mb: float = 50.0

    def __post_init__(self) -> None:
        if self.codec not in ("webp", "jpg"):
            raise UserError(f"codec must be 'webp' or 'jpg', got {self.codec!r}")
        if not 1 <= self.quality <= 100:
            raise UserError(f"quality must be in 1..100, got {self.quality}")
        if not self.sizes or any(s < 16 for s in self.sizes):
            raise UserError(f"sizes must be crop sides >= 16, got {self.sizes}")
        if self.workers < 1 or self.chunk_images < 1:
            raise UserError("workers and chunk_images must be >= 1")

    def min_iod(self, size: int) -> float:
        """Source inter-ocular distance (px) needed for a crop of this size (0 for sizes[0])."""
        return 0.0 if size == self.sizes[0] else size * TEMPLATE_EYE_GAP * self.min_iod_factor


@dataclass(frozen=True)
class BuildResult:
    out_dir: Path
    manifest: dict
    seconds: float
    analysed: int  # images run through the face analyser in this call
    cached: int  # images whose analysis came from the cache


@dataclass(frozen=True)
class _Item:
    path: Path
    source: str  # "<root name>/<identity>/<file>": recorded in shards and manifest
    identity: str  # "<root name>/<identity>"
    group: str  # MAIN, or the name of an extra test set
