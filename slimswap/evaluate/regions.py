"""Face regions from the 68 dlib landmarks, as boolean masks: where each swap metric looks.

Every metric compares the swap with the target photo over one of these regions, always built
from the *target's* landmarks, so both images are measured over exactly the same pixels:
- `inner_face_mask`: brows, eyes, nose and mouth (landmarks 17-67). The detail a viewer reads
  a face by, and what a soft generator loses first; the sharpness ratio is measured here.
- `face_mask`: jaw line plus brows (landmarks 0-26), the part the swap replaces; the
  reconstruction PSNR/SSIM is measured here.
- `skin_mask`: the face minus eyes, brows and mouth (each grown by a margin) and minus a thin
  band along the outline: the skin whose colour cast (purple, yellow) the CIEDE2000 measures.
  Brows are hair, not skin: their colour differs between people and would mask a skin cast.
All functions are pure: (frame shape, landmarks in that frame's pixels) -> mask.
"""

from __future__ import annotations

import cv2
import numpy as np

JAW = slice(0, 17)
BROWS = (slice(17, 22), slice(22, 27))
EYES = (slice(36, 42), slice(42, 48))
OUTER_LIPS = slice(48, 60)
INNER_FACE = slice(17, 68)
OUTLINE = slice(0, 27)
SKIN_MARGIN = 0.08  # grown holes and shrunk outline, in eye-centre distances


def eye_distance(landmarks: np.ndarray) -> float:
    """Distance between the eye centres: the face's own unit of length."""
    lm = np.asarray(landmarks, np.float64)
    return float(np.linalg.norm(lm[EYES[0]].mean(0) - lm[EYES[1]].mean(0)))


def hull_mask(shape: tuple[int, ...], points: np.ndarray) -> np.ndarray:
    """Boolean (H, W) mask of the convex hull of `points`."""
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points).astype(np.int32)), 1)
    return mask.astype(bool)


def inner_face_mask(shape: tuple[int, ...], landmarks: np.ndarray) -> np.ndarray:
    """Brows, eyes, nose and mouth: the hull of landmarks 17-67."""
    return hull_mask(shape, np.asarray(landmarks)[INNER_FACE])


def face_mask(shape: tuple[int, ...], landmarks: np.ndarray) -> np.ndarray:
    """The hull of the jaw line and brows (landmarks 0-26)."""
    return hull_mask(shape, np.asarray(landmarks)[OUTLINE])


def skin_mask(shape: tuple[int, ...], landmarks: np.ndarray) -> np.ndarray:
    """Cheeks, forehead band, nose and chin: the face without eyes, brows, lips and outline."""
    lm = np.asarray(landmarks, np.float32)
    margin = max(1, round(SKIN_MARGIN * eye_distance(lm)))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    face = cv2.erode(face_mask(shape, lm).astype(np.uint8), disc)
    holes = np.zeros(shape[:2], np.uint8)
    for part in (*EYES, *BROWS, OUTER_LIPS):
        holes |= hull_mask(shape, lm[part]).astype(np.uint8)
    holes = cv2.dilate(holes, disc)
    return (face > 0) & (holes == 0)


def roi_box(
    landmarks: np.ndarray, shape: tuple[int, ...], pad: float = 0.3
) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the landmarks' bounding box grown by `pad` of its size, inside the frame.

    Metrics run on this rectangle instead of the whole photo, so their cost follows the face
    size, not the photo size.
    """
    lm = np.asarray(landmarks, np.float64)
    (x0, y0), (x1, y1) = lm.min(0), lm.max(0)
    gx, gy = pad * (x1 - x0), pad * (y1 - y0)
    h, w = shape[:2]
    return (
        max(0, int(np.floor(x0 - gx))),
        max(0, int(np.floor(y0 - gy))),
        min(w, int(np.ceil(x1 + gx)) + 1),
        min(h, int(np.ceil(y1 + gy)) + 1),
    )
