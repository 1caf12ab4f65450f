"""Which faces to swap: one, many, or the one who looks like a reference photo.

Selection policy, decided here once:
- "one": the largest face by box area. HOG scores are not calibrated across face sizes (a
  sharp small face can outscore the main subject), and the person a user means is almost
  always the biggest; ties go to the higher score.
- "many": every face, in the order given.
- "reference": the one face whose embedding is closest to the reference, and only if that
  distance is within `max_distance` (dlib's same-person threshold, 0.6). Otherwise nothing is
  swapped: swapping a stranger is worse than swapping nobody.

Embeddings cost about 0.1 s a face on a CPU, so "reference" takes a callable that computes
them only when a face lacks one, and the video tracker (face/track.py) carries them from frame
to frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from slimswap.errors import UserError
from slimswap.face.record import Face, embedding_distance

Mode = Literal["one", "many", "reference"]
SELECTORS = ("one", "many", "reference")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes; 0 when either is empty."""
    ax0, ay0, ax1, ay1 = (float(v) for v in a)
    bx0, by0, bx1, by1 = (float(v) for v in b)
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = max(0.0, ax1 - ax0) * max(0.0, ay1 - ay0) + max(0.0, bx1 - bx0) * max(0.0, by1 - by0)
    union -= inter
    return inter / union if union > 0 else 0.0


def match_face(found: Sequence[Face], box: np.ndarray, min_iou: float = 0.3) -> Face | None:
    """The face of `found` overlapping `box` most, if it overlaps enough: the same face seen by
    another detector or in another picture (the evaluation's swapped face, the data build's
    mesh of dlib's face)."""
    if not found:
        return None
    best = max(found, key=lambda f: iou(f.bbox, box))
    return best if iou(best.bbox, box) >= min_iou else None


def select_faces(
    faces: Sequence[Face],
    mode: Mode = "one",
    reference_embedding: np.ndarray | None = None,
    max_distance: float = 0.6,
    embed: Callable[[Face], Face] | None = None,
) -> list[Face]:
    """The faces to swap, by the policy in this module's docstring.

    embed: fills in a face's embedding (e.g. `lambda f: analyser.embed(frame, f)`); called
    only for faces without one, and only in "reference" mode. Faces returned in that mode
    carry their embedding, so a caller can cache it.
    """
    if mode not in SELECTORS:
        raise UserError(f"face selection mode must be one of {', '.join(SELECTORS)}, got {mode!r}")
    if not faces:
        return []
    if mode == "many":
        return list(faces)
    if mode == "one":
        return [max(faces, key=lambda f: (f.area, f.score))]
    if reference_embedding is None:
        raise UserError("reference mode needs a reference face: pass a reference image")
    embedded = []
    for face in faces:
        if face.embedding is None:
            if embed is None:
                raise ValueError("reference selection needs face embeddings or an `embed` callable")
            face = embed(face)
        embedded.append(face)
    distances = [embedding_distance(f.embedding, reference_embedding) for f in embedded]
    best = int(np.argmin(distances))
    return [embedded[best]] if distances[best] <= max_distance else []
