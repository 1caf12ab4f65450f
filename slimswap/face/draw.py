"""Draw detected faces for `slimswap detect --draw`: boxes, 5 keypoints, 68 landmarks."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from slimswap.face.record import Face


def draw_faces(frame: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
    """A copy of the frame with each face's box (green), landmarks (cyan) and keypoints (red)."""
    out = frame.copy()
    thick = max(1, round(max(frame.shape[:2]) / 400))
    for i, f in enumerate(faces):
        x0, y0, x1, y1 = (int(round(float(v))) for v in f.bbox)
        cv2.rectangle(out, (x0, y0), (x1, y1), (0, 255, 0), thick)
        cv2.putText(
            out,
            f"{i}: {f.score:.2f}",
            (x0, max(0, y0 - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4 * thick,
            (0, 255, 0),
            thick,
        )
        for x, y in f.landmarks:
            cv2.circle(out, (int(round(x)), int(round(y))), thick, (0, 255, 255), -1)
        for x, y in f.kps:
            cv2.circle(out, (int(round(x)), int(round(y))), 2 * thick, (255, 0, 0), -1)
    return out
