"""Faces across video frames: detect every k frames, track boxes, smooth landmarks, choose people.

Detection (HOG) is the slow step, so it runs every `detect_every` frames; in between, landmarks
are re-run inside each tracked face's predicted box. An IoU tracker with a constant-velocity
prediction gives each person a stable id, landmark jitter on a still face is damped, and the
choice of whom to swap ("one", "many", "reference") is made per track, not per frame, so the
swap does not jump between people. The pipeline and `slimswap eval temporal` both follow
faces through `VideoFaces`, so what is measured is what is swapped.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace

import numpy as np

from slimswap.errors import UserError
from slimswap.face.analyser import Face, FaceAnalyser, box_from_landmarks, kps_from_landmarks
from slimswap.face.select import iou, select_faces

# `timer(stage)` is a context manager that accounts the time spent in a stage (StageTimer)
Timer = Callable[[str], AbstractContextManager]


def no_timer(stage: str) -> AbstractContextManager:
    return nullcontext()


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

    On the other frames the landmarks are re-run inside each active track's predicted box
    and the box is re-derived with `box_from_landmarks`. It also detects whenever no track is
    active (no face yet, or the face was lost); a new face entering beside a tracked one is
    found at the next scheduled detection, at most `every - 1` frames late.
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


SMOOTH_MOTION = 0.05  # mean landmark motion (in eye distances) followed without damping
SMOOTH_MIN = 0.35  # blend factor for a still face


def smoothing_factor(previous: np.ndarray, landmarks: np.ndarray) -> float:
    """How far to follow new landmarks (0..1): damp jitter on a still face, follow real motion.

    Landmarks wobble by a pixel or two between frames even when the face does not move;
    every wobble moves the aligned crop and shows as flicker in the swap. The blend factor
    grows with the motion (relative to the eye distance), so a moving head is never dragged
    behind (a simplified one-euro filter, written by hand).
    """
    iod = float(np.linalg.norm(landmarks[36:42].mean(0) - landmarks[42:48].mean(0))) or 1.0
    motion = float(np.abs(landmarks - previous).mean()) / iod
    return float(np.clip(motion / SMOOTH_MOTION, SMOOTH_MIN, 1.0))


class VideoFaces:
    """The faces to swap in each frame of one video, frames given in order.

    selector: "one" follows the largest face's track until it is lost; "many" every face;
    "reference" the track whose person is within dlib's 0.6 of `reference` (embedded once
    per track). detect_every: run the detector every k frames, landmarks in between.
    """

    def __init__(
        self,
        analyser: FaceAnalyser,
        selector: str = "one",
        reference: np.ndarray | None = None,
        detect_every: int = 5,
    ) -> None:
        if selector == "reference" and reference is None:
            raise UserError("reference mode needs a reference face: pass a reference image")
        self.analyser = analyser
        self.selector = selector
        self.reference = reference
        self.tracker = FaceTracker()
        self.schedule = DetectionSchedule(detect_every)
        self.chosen_ids: set[int] = set()
        self.smoothed: dict[int, np.ndarray] = {}
        self.smoothed_mesh: dict[int, np.ndarray] = {}

    def __call__(self, index: int, frame: np.ndarray, timer: Timer = no_timer) -> list[Face]:
        """Faces to swap in frame `index` (the chosen tracks' smoothed faces)."""
        return self.follow(frame, self._find(index, frame, timer))

    def follow(self, frame: np.ndarray, faces: list[Face]) -> list[Face]:
        """Faces to swap among `faces`, found in the next frame by the caller (the GPU frame
        path finds every frame's faces in one batch): tracked, smoothed and chosen as here."""
        tracks = self.tracker.update(faces)
        faces = [self._smooth(t.id, f) for t, f in zip(tracks, faces)]
        return self._choose(frame, faces, tracks)

    def _find(self, index: int, frame: np.ndarray, timer: Timer) -> list[Face]:
        if self.schedule.should_detect(index, self.tracker):
            with timer("detect"):
                boxes = self.analyser.detect_boxes(frame)
            with timer("landmarks"):
                return [self.analyser.face_from_box(frame, b, s) for b, s in boxes]
        faces = []
        with timer("landmarks"):
            for track, box in self.schedule.boxes_to_follow(self.tracker):
                face = self.analyser.face_from_box(frame, box, track.face.score)
                faces.append(replace(face, bbox=box_from_landmarks(face.landmarks)))
        return faces

    def _smooth(self, track_id: int, face: Face) -> Face:
        """The face with its landmarks (and mesh) smoothed along its track."""
        prev, lm, mesh = self.smoothed.get(track_id), face.landmarks, face.mesh
        if prev is not None:
            alpha = smoothing_factor(prev, lm)
            lm = (prev + alpha * (lm - prev)).astype(np.float32)
            prev_mesh = self.smoothed_mesh.get(track_id)
            if mesh is not None and prev_mesh is not None:
                mesh = (prev_mesh + alpha * (mesh - prev_mesh)).astype(np.float32)
        self.smoothed[track_id] = lm
        if mesh is not None:
            self.smoothed_mesh[track_id] = mesh
        return replace(face, landmarks=lm, kps=kps_from_landmarks(lm), mesh=mesh)

    def _choose(self, frame: np.ndarray, faces: list[Face], tracks: list[Track]) -> list[Face]:
        if self.selector == "many":
            return faces
        if not (self.chosen_ids & {t.id for t in tracks}):
            self.chosen_ids = self._pick(frame, faces, tracks) if faces else set()
        return [f for t, f in zip(tracks, faces) if t.id in self.chosen_ids]

    def _pick(self, frame: np.ndarray, faces: list[Face], tracks: list[Track]) -> set[int]:
        if self.selector == "one":
            pick = select_faces(faces, "one")
            return {t.id for t, f in zip(tracks, faces) if any(f is p for p in pick)}
        for t, f in zip(tracks, faces):
            if t.embedding is None:
                t.embedding = self.analyser.embed(frame, f).embedding
        with_emb = [f.with_embedding(t.embedding) for t, f in zip(tracks, faces)]
        pick = select_faces(with_emb, "reference", self.reference)
        return {t.id for t, f in zip(tracks, with_emb) if any(f is p for p in pick)}
