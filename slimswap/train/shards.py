"""Training data shards: the file format and its reader (numpy and opencv only).

Shards are built once on a CPU machine that has dlib (train/build.py) and read on a GPU
machine that has only numpy, opencv and torch, so this module imports nothing else.

A shard is an .npz of a split at one crop size: the crops as WebP or JPEG bytes in one
buffer with offsets (so a whole split stays small enough to travel and to keep on a GPU),
identity labels and names, dlib's 128-D descriptors of each source face, dlib's 68 landmarks
in crop pixels, MediaPipe's mesh mapped to the same 68 points (NaN where the mesh found no
face; absent from shards built before it), and the source path of each crop.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from slimswap.errors import UserError
from slimswap.files import atomic_write

FORMAT_VERSION = 1


@dataclass
class Shard:
    """One split at one crop size; crops stay encoded until `image` or `decode` is called.

    Crop i is `buffer[offsets[i]:offsets[i + 1]]` (WebP or JPEG bytes). `labels` index
    `identities` (names like "lfw_deepfunneled/Aaron_Peirsol"); embeddings are dlib's raw
    128-D descriptors of the source face; landmarks (N, 68, 2) are dlib's in crop pixels,
    mesh_landmarks the same 68 points from MediaPipe's mesh (NaN rows: none; None: an older
    shard without them).
    """

    size: int
    buffer: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    identities: np.ndarray
    embeddings: np.ndarray
    landmarks: np.ndarray
    sources: np.ndarray
    mesh_landmarks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> np.ndarray:
        """Crop i as RGB uint8 (S, S, 3)."""
        bgr = cv2.imdecode(self.buffer[self.offsets[i] : self.offsets[i + 1]], cv2.IMREAD_COLOR)
        if bgr is None:
            raise UserError(
                f"crop {i} of a {self.size}px shard cannot be decoded "
                "(this opencv build may lack WebP)"
            )
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def decode(self, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Crops as one RGB uint8 array (N, S, S, 3), e.g. to keep a whole split on the GPU."""
        idx = range(len(self)) if indices is None else indices
        out = np.empty((len(idx), self.size, self.size, 3), np.uint8)
        for k, i in enumerate(idx):
            out[k] = self.image(int(i))
        return out

    def identity_of(self, i: int) -> str:
        return str(self.identities[self.labels[i]])


def load_shard(path: str | Path) -> Shard:
    """Read a shard written by `build_dataset` (numpy + opencv only, no pickle)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"shard not found: {path} (build it with `slimswap data build`)")
    with np.load(path, allow_pickle=False) as z:
        version = int(z["format_version"])
        if version != FORMAT_VERSION:
            raise UserError(
                f"{path} has shard format {version}, this code reads {FORMAT_VERSION}: rebuild it"
            )
        return Shard(
            size=int(z["size"]),
            buffer=z["images"],
            offsets=z["offsets"],
            labels=z["labels"],
            identities=z["identities"],
            embeddings=z["embeddings"],
            landmarks=z["landmarks"],
            # tools/reencode_shard.py stores them as bytes: read back as text, so one photo's
            # 128 and 256 px crops still pair up by name in load_swap_dataset
            sources=z["sources"].astype(str),
            mesh_landmarks=z["mesh_landmarks"] if "mesh_landmarks" in z.files else None,
        )


def write_npz(path: Path, arrays: Mapping[str, np.ndarray], stored: Iterable[str] = ()) -> None:
    """Write an .npz atomically, byte-identical for identical arrays.

    Members are deflated except those named in `stored` (already-compressed image bytes).
    Written by hand (a zip of .npy members, as np.savez does) because np.savez stamps the
    current time into the zip, so equal shards would get different sha256.
    """
    stored = set(stored)
    with atomic_write(path) as tmp, zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED if name in stored else zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(arr), allow_pickle=False)


def shard_arrays(size: int, rows: list[tuple]) -> dict:
    """rows: (source, identity, embedding, encoded crop, dlib's crop landmarks[, MediaPipe's
    mapped crop landmarks]), sorted by source."""
    names = sorted({r[1] for r in rows})
    index = {n: i for i, n in enumerate(names)}
    lengths = np.array([len(r[3]) for r in rows], np.int64)
    return {
        "format_version": np.array(FORMAT_VERSION, np.int32),
        "size": np.array(size, np.int32),
        "images": np.frombuffer(b"".join(r[3] for r in rows), np.uint8),
        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        "labels": np.array([index[r[1]] for r in rows], np.int32),
        "identities": np.array(names),
        "embeddings": np.stack([r[2] for r in rows]).astype(np.float16),
        "landmarks": np.stack([r[4] for r in rows]).astype(np.float16),
        "sources": np.array([r[0] for r in rows]),
        **(
            {"mesh_landmarks": np.stack([r[5] for r in rows]).astype(np.float16)}
            if rows and len(rows[0]) > 5
            else {}
        ),
    }
