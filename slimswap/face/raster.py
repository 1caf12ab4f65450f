"""The crop masks of `face/mask.py` and `face/warp.py`, drawn by torch on the frames' device.

The GPU frame path (`slimswap/frame_engine.py`) keeps crops on the device from alignment to
paste-back; drawing each crop's masks with OpenCV would bring every face back to the host.
Every mask here is the same shape as its OpenCV original (same polygons, same feather) from
one primitive: the signed Euclidean distance of each pixel centre to a polygon's boundary
(positive inside). A fill is `distance >= 0`, an erosion by r `distance > r` (what
`mask._feather`'s distance transform computes), a dilation `distance > -r`; Gaussian feathers
are separable convolutions with OpenCV's kernel size and border. The polygons (a few dozen
points per face) are prepared on the host with OpenCV, which is where `convexHull` lives.
Written by hand: no library draws batched polygons as torch tensors.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from slimswap.face.mask import JAW, face_hull_points


def pad_polygons(
    polygons: Sequence[np.ndarray], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, P, 2) float32 vertices, closed by repeating the first, and (N, P) edge validity."""
    longest = max(len(p) for p in polygons)
    pts = np.zeros((len(polygons), longest + 1, 2), np.float32)
    valid = np.zeros((len(polygons), longest), bool)
    for i, p in enumerate(polygons):
        p = np.asarray(p, np.float32).reshape(-1, 2)
        pts[i, : len(p)] = p
        pts[i, len(p) :] = p[0]  # padding edges collapse onto the first vertex
        valid[i, : len(p)] = True
    return torch.from_numpy(pts).to(device), torch.from_numpy(valid).to(device)


# elements per edge chunk of `signed_distance` (N faces x edges x S x S floats: 64 MB fp32)
CHUNK_ELEMENTS = 1 << 24


def signed_distance(
    polygons: Sequence[np.ndarray], size: int, device: torch.device
) -> torch.Tensor:
    """(N, size, size) distance of each pixel centre to each polygon's outline, + inside.

    Inside by the even-odd rule; distance to the nearest edge segment. Edges are taken in
    chunks as large as CHUNK_ELEMENTS allows (all of them for one face), so a GPU launches a
    few dozen kernels per mask rather than a few dozen per edge (one edge at a time, a live
    frame's masks cost 40 ms of launches on an H200), and memory stays bounded on a CPU.
    """
    pts, valid = pad_polygons(polygons, device)
    n, edges = valid.shape
    c = torch.arange(size, device=device, dtype=torch.float32)
    y, x = torch.meshgrid(c, c, indexing="ij")
    x, y = x[None, None], y[None, None]  # (1, 1, S, S)
    dist = torch.full((n, size, size), float("inf"), device=device)
    odd = torch.zeros((n, size, size), dtype=torch.int32, device=device)
    step = max(1, CHUNK_ELEMENTS // max(1, n * size * size))
    for e0 in range(0, edges, step):
        e1 = min(edges, e0 + step)
        ax, ay = pts[:, e0:e1, 0, None, None], pts[:, e0:e1, 1, None, None]  # (N, K, 1, 1)
        bx, by = pts[:, e0 + 1 : e1 + 1, 0, None, None], pts[:, e0 + 1 : e1 + 1, 1, None, None]
        ok = valid[:, e0:e1, None, None]
        dx, dy = bx - ax, by - ay
        t = (((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy).clamp(min=1e-12)).clamp(0, 1)
        d = torch.hypot(x - (ax + t * dx), y - (ay + t * dy))
        dist = torch.minimum(dist, torch.where(ok, d, float("inf")).amin(1))
        crosses = ((ay > y) != (by > y)) & (
            x < dx * (y - ay) / torch.where(dy == 0, 1e-12, dy) + ax
        )
        odd += (crosses & ok).sum(1, dtype=torch.int32)
    return torch.where(odd % 2 == 1, dist, -dist)


def coverage(distance: torch.Tensor) -> torch.Tensor:
    """How much of each pixel a polygon covers, from the signed distance of its centre, as
    OpenCV's LINE_AA fill draws it: the outline itself is a one-pixel anti-aliased line, so a
    closed mouth's flat inner-lip polygon still leaves a seam."""
    return (distance + 1.0).clamp(0, 1)


def _kernel(sigma: float, device: torch.device) -> torch.Tensor:
    """OpenCV's Gaussian kernel for float images: size round(8 sigma + 1) | 1."""
    k = int(round(sigma * 8 + 1)) | 1
    r = torch.arange(k, device=device, dtype=torch.float32) - (k - 1) / 2
    g = torch.exp(-(r * r) / (2 * sigma * sigma))
    return g / g.sum()


def gaussian_blur(x: torch.Tensor, sigma: float, border: str = "reflect") -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) as cv2.GaussianBlur(x, (0, 0), sigma).

    border: "reflect" is OpenCV's default (BORDER_REFLECT_101, torch's "reflect"), "zeros"
    its BORDER_CONSTANT. Kernels longer than the image fall back to replicate padding.
    """
    g = _kernel(sigma, x.device)
    k = g.numel()
    n, ch, h, w = x.shape
    y = x.reshape(n * ch, 1, h, w)
    pad = k // 2
    for kernel, dims in (
        (g.view(1, 1, 1, k), (pad, pad, 0, 0)),
        (g.view(1, 1, k, 1), (0, 0, pad, pad)),
    ):
        if border == "zeros":
            y = F.pad(y, dims)
        else:
            side = y.shape[-1] if dims[0] else y.shape[-2]
            y = F.pad(y, dims, mode="reflect" if pad < side else "replicate")
        y = F.conv2d(y, kernel)
    return y.reshape(n, ch, h, w)


# ----------------------------------------------------------------------------- the masks


def _hulls(points: Sequence[np.ndarray], scale: float = 1.0) -> list[np.ndarray]:
    return [
        cv2.convexHull(np.round(np.asarray(p, np.float32) * scale).astype(np.int32)).reshape(-1, 2)
        / scale
        for p in points
    ]


def face_region(
    landmarks: np.ndarray, size: int, device: torch.device, forehead: float = 0.3
) -> torch.Tensor:
    """(N, 1, S, S) as `warp.face_region_mask` for each face's crop-pixel landmarks (N, 68, 2)."""
    hulls = _hulls([face_hull_points(lm, forehead) for lm in landmarks], 4.0)
    hard = coverage(signed_distance(hulls, size, device))[:, None]
    return gaussian_blur(hard, max(0.5, 0.04 * size / 2))


def openings(landmarks: np.ndarray, size: int, device: torch.device) -> torch.Tensor:
    """(N, 1, S, S) as `warp.opening_mask`: the inner lips and both eyes of each face."""
    from slimswap.face.warp import OPENINGS

    n = len(landmarks)
    polys = [np.asarray(lm, np.float32)[list(o)] for o in OPENINGS for lm in landmarks]
    inside = coverage(signed_distance(polys, size, device)).reshape(len(OPENINGS), n, size, size)
    hard = inside.amax(0)[:, None]
    return gaussian_blur(hard, max(0.5, 0.01 * size / 2))


def guide_region(
    landmarks: np.ndarray, size: int, device: torch.device, with_openings: bool
) -> torch.Tensor:
    """As `warp.guide_region`: the face region, minus the openings if the model keeps them."""
    region = face_region(landmarks, size, device)
    return region * (1 - openings(landmarks, size, device)) if with_openings else region


def _feathered(distance: torch.Tensor, blur_px: np.ndarray) -> torch.Tensor:
    """`mask._feather` of the hard masks `distance >= 0`: erode by 3 sigma, blur (zeros
    border), with the crop's border counted as outside; per face sigma = blur_px / 6."""
    n, s, _ = distance.shape
    c = torch.arange(s, device=distance.device, dtype=torch.float32)
    to_border = torch.minimum(
        torch.minimum(c[None, :] + 1, s - c[None, :]), torch.minimum(c[:, None] + 1, s - c[:, None])
    )
    d = torch.minimum(distance, to_border)
    out = []
    for k in range(n):
        sigma = float(blur_px[k]) / 6.0
        if sigma <= 0:
            out.append((distance[k] >= 0).float()[None, None])
            continue
        eroded = (d[k] + 0.5 > 3 * sigma).float()[None, None]
        out.append(gaussian_blur(eroded, sigma, "zeros"))
    return torch.cat(out).clamp(0, 1)


def area(
    landmarks: np.ndarray,
    size: int,
    device: torch.device,
    forehead: float = 0.15,
    blur_ratio: float = 0.1,
) -> torch.Tensor:
    """(N, 1, S, S) as `mask.area_mask`: the face hull feathered inwards."""
    hulls = _hulls([face_hull_points(lm, forehead) for lm in landmarks])
    extent = np.array(
        [max(1.0, float(min(np.ptp(h[:, 0]) + 1, np.ptp(h[:, 1]) + 1))) for h in hulls]
    )
    return _feathered(signed_distance(hulls, size, device), blur_ratio * extent)


SKIN_HOLES = (slice(36, 42), slice(42, 48), slice(17, 22), slice(22, 27), slice(48, 60))


def skin(
    landmarks: np.ndarray,
    size: int,
    device: torch.device,
    margin: float = 0.06,
    area_masks: torch.Tensor | None = None,
) -> torch.Tensor:
    """(N, 1, S, S) as `mask.skin_mask`: the area mask minus grown eyes, brows and lips.
    area_masks: `area(landmarks, size, device)` when the caller has it already."""
    n = len(landmarks)
    holes = torch.zeros((n, 1, size, size), device=device)
    grow = [
        max(1, round(margin * (float(np.ptp(np.asarray(lm)[JAW, 0])) or 1.0))) for lm in landmarks
    ]
    for part in SKIN_HOLES:
        d = signed_distance(_hulls([np.asarray(lm)[part] for lm in landmarks]), size, device)
        g = torch.tensor(grow, device=device, dtype=torch.float32)[:, None, None]
        holes = torch.maximum(holes, (d >= -g).float()[:, None])
    soft = torch.cat([gaussian_blur(holes[k : k + 1], grow[k] / 2) for k in range(n)])
    if area_masks is None:
        area_masks = area(landmarks, size, device)
    return (area_masks * (1 - soft)).clamp(0, 1)


def box(size: int, device: torch.device) -> torch.Tensor:
    """(1, 1, S, S) `mask.box_mask(size)` (the same for every face: made once by OpenCV)."""
    from slimswap.face.mask import box_mask

    return torch.from_numpy(box_mask(size)).to(device)[None, None]
