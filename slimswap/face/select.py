"""Which faces to swap (one / many / reference) and keeping that choice across video frames.

Selection policy, decided here once:
- "one": the largest face by box area. HOG scores are not calibrated across face sizes (a
  sharp small face can outscore the main subject), and the person a user means is almost
  always the biggest; ties go to the higher score.
- "many": every face, in the order given.
- "reference": the one face whose embedding is closest to the reference, and only if that
  distance is within `max_distance` (dlib's same-person threshold, 0.6). Otherwise nothing is
  swapped: swapping a stranger is worse than swapping nobody.

Embeddings cost about 0.1 s a face on a CPU, so "reference" takes a callable that computes
them only when a face lacks one, and the tracker carries them from frame to frame.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from slimswap.errors import UserError
from slimswap.face.analyser import Face, embedding_distance

Mode = Literal["one", "many", "reference"]
MODES = ("one", "many", "reference")


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
    if mode not in MODES:
        raise UserError(f"face selection mode must be one of {', '.join(MODES)}, got {mode!r}")
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


# box_from_landmarks constants: least-squares fit of dlib HOG boxes to their own 68 landmarks
# on 224 faces (deepface_testset + 150 LFW); median IoU with the detector's box 0.84.
BOX_SIDE_PER_WIDTH = 0.467
BOX_SIDE_PER_HEIGHT = 0.592
BOX_CENTRE_SHIFT = (0.016, -0.032)  # box centre minus landmark mean, in box sides


def box_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """A HOG-detector-like square box (x0, y0, x1, y1) re-derived from 68 landmarks.

    dlib's shape predictor was trained on its HOG detector's boxes, so a tracked face must be
    re-landmarked inside a box of that kind, not inside the landmarks' own extent (taller,
    brow to chin): feeding the predictor a box of the wrong scale makes landmarks drift.
    """
    lm = np.asarray(landmarks, np.float64)
    width, height = lm.max(0) - lm.min(0)
    side = BOX_SIDE_PER_WIDTH * width + BOX_SIDE_PER_HEIGHT * height
    cx, cy = lm.mean(0) + np.array(BOX_CENTRE_SHIFT) * side
    half = side / 2
    return np.array([cx - half, cy - half, cx + half, cy + half], np.float32)


@dataclass
class Track:
    """One person followed across frames.

    id: stable for the track's life. face: the latest face matched to it. missed: frames in
    a row without a match. velocity: box motion per frame (x0, y0, x1, y1), used to predict
    where the face is next so two faces crossing keep their ids. embedding: the identity
    descriptor once computed, kept so "reference" mode embeds each person once, not every
    frame.
    """

    id: int
    face: Face
    hits: int = 1
    missed: int = 0
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))
    embedding: np.ndarray | None = None

    def predicted_box(self) -> np.ndarray:
        return (self.face.bbox + self.velocity * (self.missed + 1)).astype(np.float32)


class FaceTracker:
    """Links faces across frames by the IoU of their boxes with each track's predicted box.

    Greedy matching (highest IoU first) is enough for the handful of faces in a video frame;
    a constant-velocity prediction keeps ids through crossings. A track unmatched for more
    than `max_missed` frames ends; a face matching no track starts a new id.
    """

    def __init__(self, min_iou: float = 0.3, max_missed: int = 5, smoothing: float = 0.5) -> None:
        self.min_iou = min_iou
        self.max_missed = max_missed
        self.smoothing = smoothing
        self.tracks: list[Track] = []
        self._ids = itertools.count()

    def update(self, faces: Sequence[Face]) -> list[Track]:
        """Match this frame's faces to tracks; returns one Track per face, in input order."""
        pairs = [
            (iou(track.predicted_box(), face.bbox), ti, fi)
            for ti, track in enumerate(self.tracks)
            for fi, face in enumerate(faces)
        ]
        pairs.sort(key=lambda p: -p[0])
        track_of_face: dict[int, Track] = {}
        used_tracks: set[int] = set()
        for overlap, ti, fi in pairs:
            if overlap < self.min_iou:
                break
            if ti in used_tracks or fi in track_of_face:
                continue
            used_tracks.add(ti)
            track_of_face[fi] = self._advance(self.tracks[ti], faces[fi])
        for ti, track in enumerate(self.tracks):
            if ti not in used_tracks:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for fi, face in enumerate(faces):
            if fi not in track_of_face:
                track = Track(id=next(self._ids), face=face, embedding=face.embedding)
                self.tracks.append(track)
                track_of_face[fi] = track
        return [track_of_face[fi] for fi in range(len(faces))]

    def _advance(self, track: Track, face: Face) -> Track:
        steps = track.missed + 1
        motion = (face.bbox - track.face.bbox) / steps
        track.velocity = (self.smoothing * track.velocity + (1 - self.smoothing) * motion).astype(
            np.float32
        )
        track.face = face
        track.hits += 1
        track.missed = 0
        if face.embedding is not None:
            track.embedding = face.embedding
        return track

    def active(self) -> list[Track]:
        """Tracks matched in the latest frame (the ones whose boxes a non-detect frame reuses)."""
        return [t for t in self.tracks if t.missed == 0]


@dataclass
class DetectionSchedule:
    """Run the (slow) detector every `every` frames; landmarks alone in between.

    On the other frames the pipeline re-runs landmarks inside each active track's
    predicted box and re-derives the box with `box_from_landmarks`. It also detects whenever
    no track is active (no face yet, or the face was lost); a new face entering beside a
    tracked one is found at the next scheduled detection, at most `every - 1` frames late.
    """

    every: int = 5

    def __post_init__(self) -> None:
        if self.every < 1:
            raise UserError(f"detect-every must be at least 1 frame, got {self.every}")

    def should_detect(self, frame_index: int, tracker: FaceTracker) -> bool:
        return frame_index % self.every == 0 or not tracker.active()

    def boxes_to_follow(self, tracker: FaceTracker) -> list[tuple[Track, np.ndarray]]:
        """(track, box) pairs for a non-detect frame: where to look for each face."""
        return [(t, t.predicted_box()) for t in tracker.active()]
