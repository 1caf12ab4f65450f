"""Landmark-warp face swap: no learned weights, the CPU fallback and the baseline row.

For each target crop the source face is cut into triangles (Delaunay over the target's 68
landmarks, a raised-brow forehead row and the crop border) and each triangle is warped
affinely onto the target's. `swap` returns that raw warp; like every swapper's output it is
masked, colour-matched and pasted back once, by the pipeline, which narrows its mask with
`blend_masks`: the face outline pulled in and the target's open mouth left alone. The
target keeps its pose, expression, jaw line and open mouth; the source brings its skin,
eyes, brows, nose and lips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from slimswap.face.mask import area_mask, combine_masks, face_hull_points
from slimswap.swap.base import CropSwapper, SourceIdentity

INNER_MOUTH = slice(60, 68)
N_LANDMARKS = 68


def _border_points(size: int) -> np.ndarray:
    """Crop corners and edge midpoints: the triangulation then covers the whole crop."""
    lo, mid, hi = 0.0, (size - 1) / 2, float(size - 1)
    return np.array(
        [[lo, lo], [mid, lo], [hi, lo], [hi, mid], [hi, hi], [mid, hi], [lo, hi], [lo, mid]],
        np.float32,
    )


def control_points(landmarks: np.ndarray, size: int, forehead: float) -> np.ndarray:
    """68 landmarks, 10 raised brow points (the mask's forehead edge), 8 border points."""
    lm = np.asarray(landmarks, np.float32)
    raised_brows = face_hull_points(lm, forehead)[17:]
    return np.concatenate([lm, raised_brows, _border_points(size)]).astype(np.float32)


def delaunay(points: np.ndarray) -> np.ndarray:
    """Delaunay triangles (K, 3) as indices into `points`, via cv2.Subdiv2D.

    Subdiv2D returns vertex coordinates, not indices, and merges duplicate points; each
    vertex is mapped back to the nearest input point, and triangles touching Subdiv2D's
    virtual outer vertices are dropped.
    """
    pts = np.asarray(points, np.float32)
    lo = np.floor(pts.min(0)) - 2
    hi = np.ceil(pts.max(0)) + 2
    subdiv = cv2.Subdiv2D((int(lo[0]), int(lo[1]), int(hi[0] - lo[0]), int(hi[1] - lo[1])))
    subdiv.insert([(float(x), float(y)) for x, y in pts])
    corners = subdiv.getTriangleList().reshape(-1, 3, 2)
    dist = np.linalg.norm(corners[:, :, None, :] - pts[None, None, :, :], axis=-1)
    index = dist.argmin(-1)
    matched = (dist.min(-1) < 0.5).all(1)
    tris = index[matched]
    distinct = (tris[:, 0] != tris[:, 1]) & (tris[:, 1] != tris[:, 2]) & (tris[:, 0] != tris[:, 2])
    return tris[distinct].astype(np.int32)


def piecewise_affine_warp(
    image: np.ndarray, src_points: np.ndarray, dst_points: np.ndarray, triangles: np.ndarray
) -> np.ndarray:
    """Warp `image` so each triangle at src_points lands on the same triangle at dst_points.

    Written by hand as one cv2.remap: every output pixel looks up which destination
    triangle covers it (rasterised with fillConvexPoly) and pulls from that triangle's
    affine preimage. One remap is faster than warping each triangle's bounding box and
    leaves no cracks along shared edges. Pixels outside every triangle sample the same
    coordinates in the source (both crops share the alignment template).
    """
    h, w = image.shape[:2]
    dst_tri = dst_points[triangles].astype(np.float64)  # (K, 3, 2)
    src_tri = src_points[triangles].astype(np.float64)
    # affine per triangle taking destination coordinates to source coordinates
    dst_h = np.concatenate([dst_tri, np.ones((len(triangles), 3, 1))], axis=2)  # (K, 3, 3)
    area = np.abs(np.linalg.det(dst_h))
    keep = area > 1e-6
    mats = np.zeros((len(triangles), 3, 2))
    mats[keep] = np.linalg.solve(dst_h[keep], src_tri[keep])  # (K, 3, 2): [x y 1] @ M

    tri_id = np.full((h, w), -1, np.int32)
    for k in np.flatnonzero(keep):
        cv2.fillConvexPoly(tri_id, np.round(dst_tri[k]).astype(np.int32), int(k))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x, map_y = xs.copy(), ys.copy()
    inside = tri_id >= 0
    m = mats[tri_id[inside]]  # (P, 3, 2)
    px, py = xs[inside], ys[inside]
    map_x[inside] = px * m[:, 0, 0] + py * m[:, 1, 0] + m[:, 2, 0]
    map_y[inside] = px * m[:, 0, 1] + py * m[:, 1, 1] + m[:, 2, 1]
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def inner_mouth_mask(landmarks: np.ndarray, size: int, grow: float = 0.02) -> np.ndarray:
    """Soft mask of the target's open mouth (inner lip polygon, slightly grown).

    The source has no teeth or tongue where the target opens its mouth; keeping the
    target's mouth interior avoids stretched lips across the gap.
    """
    lm = np.asarray(landmarks, np.float32)
    hard = np.zeros((size, size), np.float32)
    cv2.fillPoly(hard, [np.round(lm[INNER_MOUTH]).astype(np.int32)], 1.0)
    radius = max(1, round(grow * size))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    hard = cv2.dilate(hard, kernel)
    return cv2.GaussianBlur(hard, (0, 0), sigmaX=radius)


@dataclass(eq=False)
class ClassicSwapper(CropSwapper):
    """Delaunay piecewise-affine swap of the source face onto each target crop.

    forehead: how far the brow row is raised (fraction of chin-to-brow distance).
    blur_ratio: feather width of the blend mask (fraction of the face size).
    keep_mouth: leave the target's open-mouth interior (teeth, tongue) in place.
    shrink: pull the mask's outline this fraction towards the nose tip. The face outline is
    where the source's hair, ears or background creep in and where the target turns away
    (one cheek stretches); the target's own skin there hides both.
    """

    name: ClassVar[str] = "classic"
    any_size: ClassVar[bool] = True  # works at the size the crops come in

    resolution: int = 256
    forehead: float = 0.15
    blur_ratio: float = 0.15
    keep_mouth: bool = True
    shrink: float = 0.08

    def _swap(
        self, crops: np.ndarray, identity: SourceIdentity, target_landmarks: np.ndarray | None
    ) -> np.ndarray:
        """The source warped onto each target's landmarks, same shape and dtype as `crops`."""
        if target_landmarks is None:
            raise ValueError("the classic swapper needs target_landmarks (N, 68, 2) in crop pixels")
        target_landmarks = np.asarray(target_landmarks, np.float32)
        if target_landmarks.shape != (len(crops), N_LANDMARKS, 2):
            raise ValueError(
                f"target_landmarks must be ({len(crops)}, 68, 2), got {target_landmarks.shape}"
            )
        size = crops.shape[1]
        src_crop, src_landmarks = _source_at(identity, size)
        src_points = control_points(src_landmarks, size, self.forehead)
        out = np.empty_like(crops)
        for i, landmarks in enumerate(target_landmarks):
            dst_points = control_points(landmarks, size, self.forehead)
            out[i] = piecewise_affine_warp(src_crop, src_points, dst_points, delaunay(dst_points))
        return out

    def blend_masks(self, target_landmarks: np.ndarray, size: int) -> np.ndarray:
        """(N, S, S) float: where the warp may replace the target (the pipeline's paste-back
        mask is narrowed to it): the face area with its outline pulled in, minus the target's
        open mouth."""
        masks = []
        for landmarks in np.asarray(target_landmarks, np.float32):
            shrunk = _shrunk(landmarks, self.shrink)
            mask = area_mask(shrunk, size, self.forehead, self.blur_ratio)
            if self.keep_mouth:
                mask = combine_masks(mask, 1.0 - inner_mouth_mask(landmarks, size))
            masks.append(mask)
        return np.stack(masks) if masks else np.zeros((0, size, size), np.float32)


def _shrunk(landmarks: np.ndarray, fraction: float) -> np.ndarray:
    """Landmarks pulled `fraction` of the way towards the nose tip (landmark 30)."""
    lm = np.asarray(landmarks, np.float32)
    return lm + fraction * (lm[30] - lm)


def _source_at(identity: SourceIdentity, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The source crop and its landmarks at the target crops' size."""
    crop = np.asarray(identity.crop)
    if crop.ndim != 3 or crop.shape[2] != 3 or crop.shape[0] != crop.shape[1]:
        raise ValueError(f"identity.crop must be (S, S, 3), got {crop.shape}")
    landmarks = np.asarray(identity.landmarks, np.float32)
    if landmarks.shape != (N_LANDMARKS, 2):
        raise ValueError(f"identity.landmarks must be (68, 2), got {landmarks.shape}")
    if crop.shape[0] == size:
        return crop.astype(np.uint8), landmarks
    scale = size / crop.shape[0]
    resized = cv2.resize(
        crop, (size, size), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    )
    # pixel-centre convention: a pixel edge at 0 stays at 0 when resizing
    return resized.astype(np.uint8), (landmarks + 0.5) * scale - 0.5
