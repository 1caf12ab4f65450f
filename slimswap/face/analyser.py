"""Face detection (dlib HOG), 68 landmarks, 5 keypoints and the 128-D identity embedding.

All three dlib models ship inside PyPI packages (`dlib-bin`, `face-recognition-models`), so
nothing is downloaded at run time. Frames are RGB uint8 (H, W, 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import dlib
import numpy as np

from slimswap.paths import dlib_model_path

LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
NOSE_TIP = 30
MOUTH_LEFT = 48
MOUTH_RIGHT = 54


@dataclass(frozen=True)
class Face:
    """One face in one frame; travels unchanged from detection to paste-back.

    bbox is (x0, y0, x1, y1) in frame pixels; landmarks (68, 2) and kps (5, 2) float32;
    embedding is dlib's raw 128-D descriptor (not L2-normalised) or None until computed.
    """

    bbox: np.ndarray
    landmarks: np.ndarray
    kps: np.ndarray
    score: float
    embedding: np.ndarray | None = field(default=None, compare=False)

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


def embedding_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between dlib descriptors; below 0.6 means the same person."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def _rect(bbox: np.ndarray) -> dlib.rectangle:
    x0, y0, x1, y1 = (int(round(float(v))) for v in bbox)
    return dlib.rectangle(x0, y0, x1, y1)


class FaceAnalyser:
    """dlib's HOG detector, 68-point shape predictor and face ResNet, loaded lazily.

    `upsample` doubles the frame that many times before detection: slower, but finds faces
    down to about 40 px instead of 80 px.
    """

    def __init__(self, upsample: int = 0, min_score: float = 0.0) -> None:
        self.upsample = upsample
        self.min_score = min_score

    @cached_property
    def _detector(self):
        return dlib.get_frontal_face_detector()

    @cached_property
    def _predictor(self):
        return dlib.shape_predictor(str(dlib_model_path("shape_predictor_68_face_landmarks.dat")))

    @cached_property
    def _recognizer(self):
        return dlib.face_recognition_model_v1(
            str(dlib_model_path("dlib_face_recognition_resnet_model_v1.dat"))
        )

    def detect_boxes(self, frame: np.ndarray, upsample: int | None = None) -> list[tuple[np.ndarray, float]]:
        """Face boxes (x0, y0, x1, y1) with HOG scores, best first."""
        ups = self.upsample if upsample is None else upsample
        rects, scores, _ = self._detector.run(np.ascontiguousarray(frame), ups, self.min_score)
        boxes = [
            (np.array([r.left(), r.top(), r.right(), r.bottom()], np.float32), float(s))
            for r, s in zip(rects, scores)
        ]
        return sorted(boxes, key=lambda b: -b[1])

    def landmarks(self, frame: np.ndarray, bbox: np.ndarray) -> np.ndarray:
        """68 landmarks (68, 2) float32 for the face inside bbox."""
        shape = self._predictor(np.ascontiguousarray(frame), _rect(bbox))
        return np.array([[p.x, p.y] for p in shape.parts()], np.float32)

    def face_from_box(self, frame: np.ndarray, bbox: np.ndarray, score: float) -> Face:
        lm = self.landmarks(frame, bbox)
        return Face(bbox=np.asarray(bbox, np.float32), landmarks=lm, kps=kps_from_landmarks(lm), score=score)

    def detect(self, frame: np.ndarray, upsample: int | None = None) -> list[Face]:
        """All faces in the frame with landmarks and keypoints (no embedding), best first."""
        return [self.face_from_box(frame, b, s) for b, s in self.detect_boxes(frame, upsample)]

    def embed(self, frame: np.ndarray, face: Face) -> Face:
        """The face with dlib's 128-D descriptor filled in (about 110 ms on a CPU core)."""
        shape = dlib.full_object_detection(
            _rect(face.bbox), [dlib.point(int(round(x)), int(round(y))) for x, y in face.landmarks]
        )
        desc = self._recognizer.compute_face_descriptor(np.ascontiguousarray(frame), shape)
        return face.with_embedding(np.array(desc, np.float32))

    def chip(self, frame: np.ndarray, face: Face, size: int = 150) -> np.ndarray:
        """dlib's own aligned chip (what its ResNet sees): the reference for the PyTorch port."""
        shape = dlib.full_object_detection(
            _rect(face.bbox), [dlib.point(int(round(x)), int(round(y))) for x, y in face.landmarks]
        )
        return np.array(dlib.get_face_chip(np.ascontiguousarray(frame), shape, size, 0.25))

    def embed_chip(self, chip: np.ndarray) -> np.ndarray:
        """dlib's descriptor of an already aligned 150x150 chip."""
        return np.array(self._recognizer.compute_face_descriptor(np.ascontiguousarray(chip)), np.float32)
