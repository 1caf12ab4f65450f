"""Canonical 5-point alignment and its exact inverse.

The template is the mean position of our five keypoints (eye centres, nose tip, mouth
corners) inside dlib's own 150px face chip (`get_face_chip_details(shape, 150, 0.25)`),
measured on 250 LFW faces by tools/derive_template.py. Cropping the way dlib crops means the
PyTorch identity network sees nearly what dlib sees, so the identity loss measures what the
evaluation measures. Coordinates are in units of the crop side, pixel-edge convention.
"""

from __future__ import annotations

import cv2
import numpy as np

TEMPLATE_5 = np.array(
    [
        [0.31839, 0.31229],  # eye centre, image left (subject's right)
        [0.66827, 0.31217],  # eye centre, image right
        [0.49324, 0.49812],  # nose tip (landmark 30)
        [0.33537, 0.69854],  # mouth corner, image left (48)
        [0.65193, 0.69998],  # mouth corner, image right (54)
    ],
    dtype=np.float64,
)
DEFAULT_SIZE = 128
# How models/MANIFEST names this template: a model trained on another one is refused.
TEMPLATE_NAME = "slimswap 5-point (dlib chip frame, padding 0.25), see slimswap/face/align.py"


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) taking src to dst.

    Written by hand (Umeyama's closed form, a dozen lines) because cv2's estimator is
    robust-fitting (RANSAC/LMedS) rather than exact least squares on five points.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / s.var(0).sum()
    affine = np.zeros((2, 3))
    affine[:, :2] = scale * rot
    affine[:, 2] = mu_d - scale * rot @ mu_s
    return affine


def template(size: int = DEFAULT_SIZE) -> np.ndarray:
    """The five template points in pixel coordinates of a size x size crop.

    Template units are pixel edges (0..1 spans the crop); cv2 addresses pixel centres, hence
    the half-pixel shift. Crops of any size then cover exactly the same face region.
    """
    return TEMPLATE_5 * size - 0.5


def estimate_affine(kps5: np.ndarray, size: int = DEFAULT_SIZE) -> np.ndarray:
    """2x3 affine taking frame coordinates to crop coordinates."""
    return similarity_transform(kps5, template(size))


def align(
    frame: np.ndarray, kps5: np.ndarray, size: int = DEFAULT_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Cut the face at `kps5` out of `frame` as a size x size crop; return (crop, affine).

    `affine` maps frame pixels to crop pixels; `paste_back` uses its exact inverse.
    """
    affine = estimate_affine(kps5, size)
    crop = cv2.warpAffine(
        frame, affine, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )
    return crop, affine


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """Exact inverse of a 2x3 affine (crop -> frame)."""
    return cv2.invertAffineTransform(np.asarray(affine, np.float64))


def transform_points(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to (N, 2) points."""
    points = np.asarray(points, np.float64)
    return points @ affine[:, :2].T + affine[:, 2]


def frame_px_per_crop_px(affine: np.ndarray) -> float:
    """How many frame pixels one crop pixel of a frame -> crop affine covers (> 1: the face
    is larger in the frame than the crop)."""
    return 1.0 / float(np.sqrt(abs(np.linalg.det(np.asarray(affine)[:, :2]))))


def warp_batch(images, rows, affines, size: int | tuple[int, int], padding: str = "zeros"):
    """Batched `cv2.warpAffine` in torch: (len(affines), C, h, w) warps of images[rows]
    (N, C, H, W) through affines from input to output pixels, one grid_sample (bilinear,
    pixel-centre convention). size: the output side, or (h, w). padding: grid_sample's
    ("zeros", "border", or "reflection" for align's mirrored border). The GPU frame path
    cuts its crops here (frame -> crop affines) and pastes them back (crop -> frame), and
    MediaPipe's torch runtime cuts its crops here.
    """
    import torch
    import torch.nn.functional as F

    oh, ow = (size, size) if isinstance(size, int) else size
    h, w = images.shape[-2:]
    to_in = np.array([[2 / w, 0, 1 / w - 1], [0, 2 / h, 1 / h - 1], [0, 0, 1]])
    from_out = np.array([[ow / 2, 0, (ow - 1) / 2], [0, oh / 2, (oh - 1) / 2], [0, 0, 1]])
    theta = np.stack(
        [(to_in @ np.linalg.inv(np.vstack([a[:2], [0, 0, 1]])) @ from_out)[:2] for a in affines]
    )
    grid = F.affine_grid(
        torch.from_numpy(theta).to(images.device, images.dtype),
        [len(affines), images.shape[1], oh, ow],
        align_corners=False,
    )
    src = images.index_select(0, torch.as_tensor(rows, device=images.device))
    return F.grid_sample(src, grid, mode="bilinear", padding_mode=padding, align_corners=False)
