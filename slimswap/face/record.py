"""The Face record: one face in one frame, from detection to paste-back, and what is derived
from its 68 landmarks alone (5 keypoints, a detector-like box) or compared between two
(the identity distance). Plain numpy: every face module imports it, it imports none."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
NOSE_TIP = 30
MOUTH_LEFT = 48
MOUTH_RIGHT = 54


@dataclass(frozen=True)
class Face:
    """One face in one frame; travels unchanged from detection to paste-back.

    bbox is (x0, y0, x1, y1) in frame pixels; landmarks (68, 2) and kps (5, 2) float32;
    embedding is dlib's raw 128-D descriptor (not L2-normalised) or None until computed;
    mesh is MediaPipe's (468, 3) points in frame pixels (x, y, depth) or None (dlib backend).
    """

    bbox: np.ndarray
    landmarks: np.ndarray
    kps: np.ndarray
    score: float
    embedding: np.ndarray | None = field(default=None, compare=False)
    mesh: np.ndarray | None = field(default=None, compare=False, repr=False)

    def with_embedding(self, embedding: np.ndarray) -> Face:
        return replace(self, embedding=np.asarray(embedding, np.float32))

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.bbox
        return float(max(0.0, x1 - x0) * max(0.0, y1 - y0))

    def to_json(self) -> dict:
        out = {
            "bbox": [round(float(v), 1) for v in self.bbox],
            "score": round(self.score, 4),
            "kps": np.round(self.kps, 1).tolist(),
            "landmarks": np.round(self.landmarks, 1).tolist(),
        }
        if self.embedding is not None:
            out["embedding"] = np.round(self.embedding, 5).tolist()
        return out


def kps_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """Eye centres, nose tip and mouth corners from the 68 landmarks, in template order."""
    lm = np.asarray(landmarks, np.float32)
    return np.stack(
        [lm[LEFT_EYE].mean(0), lm[RIGHT_EYE].mean(0), lm[NOSE_TIP], lm[MOUTH_LEFT], lm[MOUTH_RIGHT]]
    )


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


def embedding_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between dlib descriptors; below 0.6 means the same person."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
