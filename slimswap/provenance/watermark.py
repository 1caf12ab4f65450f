"""Both invisible marks together: what the pipeline embeds and what `verify` reads.

The whole-frame mark (frame_mark.py) goes on every frame and survives JPEG and H.264
re-encoding at the original size (and exact halving), even where no face is found again (a
strongly re-encoded video); the face mark (face_mark.py) goes on every swapped face and
survives resizing, cropping and small rotations. Both are held to one just-noticeable-
difference budget (jnd.py, issue 24): the frame mark takes its share first, and the face mark
may use the rest or overwrite it inside the face boxes: it has 12 votes per bit where the frame
mark has hundreds, so the frame mark shrugs off being overwritten there. A frame counts as
marked when either decodes. On an unmarked frame each test is a false positive with
probability below 1e-6 (frame mark 6.9e-7 for its three readings, frame_mark.RULES; each
face 7.2e-8 for its two readings, see face_mark.FALSE_POSITIVE_BOUND), so the union stays
below 1e-6 for up to 4 faces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from slimswap.face.analyser import FaceAnalyser
from slimswap.provenance import face_mark, frame_mark

WATERMARK_IDS = (face_mark.WATERMARK_ID, frame_mark.WATERMARK_ID)
# faces are looked for again at double size when none is found in a frame this small or
# smaller (dlib's detector starts missing faces under ~80 px; halved copies have them)
UPSAMPLE_BELOW_PX = 1200


def embed_watermark(rgb: np.ndarray, faces_kps5: Sequence[np.ndarray] = ()) -> np.ndarray:
    """A copy of an RGB uint8 frame with the frame mark and the face mark on each face."""
    marked = frame_mark.embed_frame_mark(rgb)
    if not len(faces_kps5):
        return marked
    return face_mark.embed_face_mark(marked, list(faces_kps5), original=rgb)


def embed_watermark_timed(
    rgb: np.ndarray, faces_kps5: Sequence[np.ndarray] = (), enabled: bool = True
) -> tuple[np.ndarray, float]:
    """`embed_watermark` as a worker process's job (the GPU frame path): the marked frame and
    the seconds it took there. Lives here so a worker imports numpy and OpenCV, not torch."""
    import time

    t0 = time.perf_counter()
    out = embed_watermark(rgb, faces_kps5) if enabled else rgb
    return out, time.perf_counter() - t0


def embed_watermark_planes_timed(
    rgb: np.ndarray, planes: np.ndarray, faces_kps5: Sequence[np.ndarray] = ()
) -> tuple[np.ndarray, float]:
    """`embed_watermark_timed` for the GPU frame path's planes: the marks made on `rgb` and
    carried into its I420 `planes` (the device's conversion of it) as a change of Y alone."""
    import time

    from slimswap.yuv import add_luma_change

    t0 = time.perf_counter()
    out = add_luma_change(planes, rgb, embed_watermark(rgb, faces_kps5))
    return out, time.perf_counter() - t0


@dataclass(frozen=True)
class WatermarkReading:
    frame: frame_mark.FrameMarkReading
    faces: list[face_mark.FaceMarkReading] = field(default_factory=list)

    @property
    def readable(self) -> bool:
        return self.frame.readable or bool(self.faces)

    @property
    def detected(self) -> bool:
        return self.frame.detected or any(f.detected for f in self.faces)

    @property
    def bit_errors(self) -> int:
        """The fewest bit errors of any mark read (64 when none could be read)."""
        errors = [f.bit_errors for f in self.faces]
        if self.frame.readable:
            errors.append(self.frame.bit_errors)
        return min(errors, default=frame_mark.N_BITS)

    def to_json(self) -> dict:
        return {
            "detected": self.detected,
            "frame_mark_bit_errors": self.frame.bit_errors if self.frame.readable else None,
            "face_mark_bit_errors": [f.bit_errors for f in self.faces],
        }


def find_faces(rgb: np.ndarray, analyser: FaceAnalyser) -> list[np.ndarray]:
    """5 keypoints of every face dlib finds (at double size too, for small frames)."""
    faces = analyser.detect(rgb, upsample=0)
    if not faces and max(rgb.shape[:2]) <= UPSAMPLE_BELOW_PX:
        faces = analyser.detect(rgb, upsample=1)
    return [f.kps for f in faces]


def read_watermark(rgb: np.ndarray, analyser: FaceAnalyser | None = None) -> WatermarkReading:
    """Read the frame mark, and the face mark of every face found (when given an analyser)."""
    rgb = np.asarray(rgb)
    faces = find_faces(rgb, analyser) if analyser is not None else []
    return WatermarkReading(
        frame=frame_mark.read_frame_mark(rgb),
        faces=[face_mark.read_face_mark(rgb, kps) for kps in faces],
    )
