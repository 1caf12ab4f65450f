"""Soft masks over an aligned crop: where a swapped face may replace the target's pixels.

Every mask is float32 in [0, 1], shape (H, W), with a feathered edge so paste-back never
shows a hard seam. Masks combine by taking the minimum (a pixel is swapped only where every
mask allows it), which is how later masks (occlusion) will plug in.
"""

from __future__ import annotations

import cv2
import numpy as np

JAW = slice(0, 17)
BROWS = slice(17, 27)
CHIN = 8


def _size_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _padding4(padding: float | tuple[float, float, float, float]) -> tuple[float, ...]:
    if isinstance(padding, (int, float)):
        return (float(padding),) * 4
    if len(padding) != 4:
        raise ValueError(
            f"padding must be one number or (top, right, bottom, left), got {padding!r}"
        )
    return tuple(float(p) for p in padding)


def _feather(hard: np.ndarray, blur_px: float) -> np.ndarray:
    """A ramp from about 0 at the hard mask's edge to about 1 at `blur_px` inside it.

    Erode by three sigmas, then blur (sigma = blur_px / 6). Eroding first keeps the feather
    inside the region (the value at the original edge is about 0.001 instead of 0.5): the
    blend never reaches past the face into the background, and a crop's border never shows
    as a step after paste-back.
    """
    mask = hard.astype(np.float32)
    if blur_px <= 0:
        return mask
    sigma = blur_px / 6.0
    # erosion by a disc as a distance-transform threshold: O(pixels), whatever the radius;
    # the zero frame makes the crop's own border count as outside
    framed = cv2.copyMakeBorder(
        (mask > 0.5).astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0
    )
    inside = cv2.distanceTransform(framed, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    mask = (inside > 3 * sigma).astype(np.float32)
    mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_CONSTANT)
    return np.clip(mask, 0.0, 1.0)


def box_mask(
    size: int | tuple[int, int],
    blur_ratio: float = 0.1,
    padding: float | tuple[float, float, float, float] = 0.0,
) -> np.ndarray:
    """A rectangle over the whole crop whose edges fade to 0 at the crop border.

    blur_ratio: feather width (0 -> 1 ramp) as a fraction of the crop side. padding: fraction of the side
    cut from each edge (one number or top, right, bottom, left), e.g. to drop the neck.
    A crop pasted with this mask has no visible frame even when the swap changes colours.
    """
    h, w = _size_hw(size)
    top, right, bottom, left = _padding4(padding)
    hard = np.zeros((h, w), np.float32)
    y0, y1 = round(top * h), h - round(bottom * h)
    x0, x1 = round(left * w), w - round(right * w)
    hard[y0:y1, x0:x1] = 1.0
    return _feather(hard, blur_ratio * min(h, w))


def face_hull_points(landmarks: np.ndarray, forehead: float = 0.15) -> np.ndarray:
    """Jaw line plus eyebrows pushed up towards the forehead, (27, 2) float32.

    The 68-point model stops at the eyebrows, so a hull of the raw points cuts the forehead
    in half; each brow point moves away from the chin by `forehead` x the chin-to-brow
    distance (along the face's own up direction, so it works on tilted faces).
    """
    lm = np.asarray(landmarks, np.float32)
    chin = lm[CHIN]
    brows = lm[BROWS]
    up = brows.mean(0) - chin
    brows = brows + forehead * up
    return np.concatenate([lm[JAW], brows]).astype(np.float32)


def area_mask(
    landmarks: np.ndarray,
    size: int | tuple[int, int],
    forehead: float = 0.15,
    blur_ratio: float = 0.1,
) -> np.ndarray:
    """The face area (convex hull of jaw and raised brows), feathered inwards.

    landmarks: (68, 2) in the crop's pixel coordinates. blur_ratio: feather width as a
    fraction of the hull's size (not the crop's), so small and large faces fade alike.
    """
    h, w = _size_hw(size)
    points = face_hull_points(landmarks, forehead)
    hull = cv2.convexHull(np.round(points).astype(np.int32))
    hard = np.zeros((h, w), np.float32)
    cv2.fillConvexPoly(hard, hull, 1.0, lineType=cv2.LINE_8)
    _, _, bw, bh = cv2.boundingRect(hull)
    return _feather(hard, blur_ratio * max(1, min(bw, bh)))


def skin_mask(
    landmarks: np.ndarray,
    size: int | tuple[int, int],
    margin: float = 0.06,
    area: np.ndarray | None = None,
) -> np.ndarray:
    """The face's skin from its 68 points: the area mask minus eyes, brows and lips (each hull
    grown by `margin` x the face's width), feathered. Where the skin's colour may be changed
    (`blend.correct_colour`) without touching the features a face is recognised by. area:
    `area_mask(landmarks, size)` when the caller has it already (paste-back does)."""
    h, w = _size_hw(size)
    lm = np.asarray(landmarks, np.float32)
    width = float(np.ptp(lm[JAW, 0])) or 1.0
    grow = max(1, round(margin * width))
    holes = np.zeros((h, w), np.uint8)
    for part in (slice(36, 42), slice(42, 48), slice(17, 22), slice(22, 27), slice(48, 60)):
        cv2.fillConvexPoly(holes, cv2.convexHull(np.round(lm[part]).astype(np.int32)), 1)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    holes = cv2.dilate(holes, disc).astype(np.float32)
    holes = cv2.GaussianBlur(holes, (0, 0), grow / 2)
    area = area_mask(lm, (h, w)) if area is None else area
    return np.clip(area * (1.0 - holes), 0.0, 1.0)


def combine_masks(*masks: np.ndarray) -> np.ndarray:
    """Pixel-wise minimum: a pixel is swapped only as much as the strictest mask allows."""
    if not masks:
        raise ValueError("combine_masks needs at least one mask")
    shapes = {m.shape for m in masks}
    if len(shapes) != 1:
        raise ValueError(f"masks must share one shape, got {sorted(shapes)}")
    return np.minimum.reduce([np.asarray(m, np.float32) for m in masks])


# ----------------------------------------------------------------------------- regions (mesh)

REGIONS = ("skin", "eyes", "brows", "nose", "lips", "mouth-inside")
# everything but the inside of the mouth: the target's teeth and tongue show through
# (Deep-Live-Cam's "mouth mask"); add mouth-inside to swap it too
DEFAULT_REGIONS = ("skin", "eyes", "brows", "nose", "lips")


def _fill(
    hard: np.ndarray, mesh: np.ndarray, outlines: tuple[tuple[int, ...], ...], value: float
) -> None:
    """Fill closed mesh outlines into `hard` at 1/16 px precision (cv2 fixed-point shift 4)."""
    polys = [np.round(mesh[list(o), :2] * 16).astype(np.int32) for o in outlines]
    cv2.fillPoly(hard, polys, value, lineType=cv2.LINE_8, shift=4)


def region_parts(mesh: np.ndarray, size: int | tuple[int, int]) -> dict[str, np.ndarray]:
    """Hard (0/1) masks of each region from a (468, 2|3) mesh in crop pixels.

    The regions partition the face oval: skin is the oval minus eyes, brows, nose and the
    outer lip outline; lips are the outer outline minus the inner one; mouth-inside is the
    inner outline (teeth, tongue, the dark of an open mouth).
    """
    from slimswap.face import mesh_map as mm

    h, w = _size_hw(size)
    mesh = np.asarray(mesh, np.float32)

    def fill(*outlines: tuple[int, ...]) -> np.ndarray:
        hard = np.zeros((h, w), np.float32)
        _fill(hard, mesh, outlines, 1.0)
        return hard

    oval = fill(mm.FACE_OVAL)
    eyes = fill(mm.RIGHT_EYE, mm.LEFT_EYE)
    brows = fill(mm.RIGHT_BROW, mm.LEFT_BROW)
    nose = fill(mm.NOSE)
    outer = fill(mm.LIPS_OUTER)
    inner = fill(mm.LIPS_INNER)
    skin = oval * (1 - np.maximum.reduce([eyes, brows, nose, outer]))
    return {
        "skin": skin,
        "eyes": eyes,
        "brows": brows,
        "nose": nose,
        "lips": outer * (1 - inner),
        "mouth-inside": inner,
    }


def region_mask(
    mesh: np.ndarray,
    size: int | tuple[int, int],
    regions: tuple[str, ...] = DEFAULT_REGIONS,
    blur_ratio: float = 0.03,
) -> np.ndarray:
    """The union of the named face regions (see REGIONS), feathered inwards.

    mesh: MediaPipe's 468 points in the crop's pixel coordinates. blur_ratio: feather width
    as a fraction of the face oval's size; smaller than the area mask's, because the holes it
    leaves (an open mouth) are small and the feather widens them.
    """
    bad = [r for r in regions if r not in REGIONS]
    if bad or not regions:
        raise ValueError(f"regions must be some of {', '.join(REGIONS)}, got {regions!r}")
    parts = region_parts(mesh, size)
    hard = np.maximum.reduce([parts[r] for r in regions])
    from slimswap.face.mesh_map import FACE_OVAL

    oval = np.asarray(mesh, np.float32)[list(FACE_OVAL), :2]
    extent = float(min(oval.max(0) - oval.min(0)))
    return _feather(hard, blur_ratio * max(1.0, extent))
