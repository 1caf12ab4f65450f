"""The source face warped onto the target's landmarks: the geometry the generator starts from.

A thin-plate spline through the 68 landmark pairs moves every pixel of the source crop to
where the target's face has the same feature, so the source's eyes, nose and mouth arrive at
the target's pose and expression with their own texture at full resolution. The generator
then only has to blend, relight and fix what a warp cannot (mouth interior, occluders) and
never has to *invent* high-frequency detail, which is what made the v1 generator soft.

Everything is batched torch (CPU or GPU) and outside the network, so the same code feeds
training and inference, and the exported ONNX models need no linear solver. The spline is
evaluated on a coarse grid and upsampled: a smooth map loses nothing by it and the cost no
longer grows with the crop size.

Coordinates are in crop units (0..1, pixel-edge convention: a pixel index i has centre
(i + 0.5) / size), which is what `grid_sample(align_corners=False)` uses after 2u - 1.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# Control points: brows, nose, eyes and outer lips (17..59). The jaw outline is left out: on a
# turned source it runs along the silhouette, so pinning it to a frontal target's jaw drags the
# background into the cheek; the inner-lip points are left out because closed lips put two of
# them on one spot, which an open target mouth would have to tear apart.
CONTROL_POINTS = tuple(range(17, 60))
# With the target's openings kept (`target_openings`), the inner lips join them: the map runs
# from the target to the source (`grid_sample` pulls), so an open target mouth sends its upper
# and lower inner-lip points to the source's one closed seam (many to one, no tearing) and the
# source's lips end where the target's do, around the target's own mouth interior.
CONTROL_POINTS_OPENINGS = tuple(range(17, 68))
COARSE = 64  # side of the grid the spline is evaluated on before upsampling
REGULARISATION = (
    1e-5  # smoothing on the kernel diagonal: coincident points (closed lips) stay solvable
)


def _tps_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """U(r) = r^2 log r^2 between point sets a (N,P,2) and b (N,K,2) -> (N,P,K)."""
    r2 = torch.cdist(a, b).square()
    return r2 * torch.log(r2.clamp(min=1e-12))


def tps_coefficients(
    dst: torch.Tensor, src: torch.Tensor, regularisation: float = REGULARISATION
) -> torch.Tensor:
    """Spline f with f(dst_i) = src_i: (N, K+3, 2) kernel weights then affine terms.

    Solved in float64: the system mixes kernel values near 0 with affine terms near 1, and a
    float32 solve moves the landmarks by a visible fraction of a pixel at 256 px.
    """
    n, k, _ = dst.shape
    d = dst.double()
    kernel = _tps_kernel(d, d) + regularisation * torch.eye(k, dtype=d.dtype, device=d.device)
    p = torch.cat([torch.ones(n, k, 1, dtype=d.dtype, device=d.device), d], dim=2)
    top = torch.cat([kernel, p], dim=2)
    bottom = torch.cat(
        [p.transpose(1, 2), torch.zeros(n, 3, 3, dtype=d.dtype, device=d.device)], dim=2
    )
    system = torch.cat([top, bottom], dim=1)
    rhs = torch.cat([src.double(), torch.zeros(n, 3, 2, dtype=d.dtype, device=d.device)], dim=1)
    return torch.linalg.solve(system, rhs)


def tps_apply(coeffs: torch.Tensor, dst: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Evaluate the spline of `tps_coefficients(dst, ...)` at points (N,P,2) -> (N,P,2)."""
    k = dst.shape[1]
    pts = points.double()
    p = torch.cat([torch.ones_like(pts[..., :1]), pts], dim=2)
    return (_tps_kernel(pts, dst.double()) @ coeffs[:, :k] + p @ coeffs[:, k:]).to(points.dtype)


def sampling_grid(
    dst: torch.Tensor,
    src: torch.Tensor,
    size: int,
    coarse: int = COARSE,
    control: tuple[int, ...] = CONTROL_POINTS,
) -> torch.Tensor:
    """grid_sample grid (N, size, size, 2) that pulls source pixels onto the target's layout.

    dst: target landmarks, src: source landmarks, both (N, 68, 2) in crop units; the spline
    runs through the `control` points of them.
    """
    n = dst.shape[0]
    dst, src = dst[:, control], src[:, control]
    coarse = min(coarse, size)
    # coarse nodes on the first and last pixel centres, so corner-aligned upsampling puts a
    # node exactly on every output border pixel (an affine map comes out exact everywhere)
    half = 0.5 / size
    c = torch.linspace(half, 1 - half, coarse, device=dst.device, dtype=torch.float32)
    ys, xs = torch.meshgrid(c, c, indexing="ij")
    points = torch.stack([xs, ys], dim=-1).reshape(1, -1, 2).expand(n, -1, -1)
    mapped = tps_apply(tps_coefficients(dst, src), dst, points).float()
    grid = mapped.reshape(n, coarse, coarse, 2).permute(0, 3, 1, 2)
    if coarse != size:
        grid = F.interpolate(grid, size=(size, size), mode="bilinear", align_corners=True)
    return (grid * 2 - 1).permute(0, 2, 3, 1)


def warp_source(
    source: torch.Tensor,
    source_landmarks: torch.Tensor,
    target_landmarks: torch.Tensor,
    control: tuple[int, ...] = CONTROL_POINTS,
) -> torch.Tensor:
    """Source crops (N,C,S,S) warped so their landmarks land on the target's (both crop units)."""
    size = source.shape[-1]
    grid = sampling_grid(target_landmarks, source_landmarks, size, control=control)
    grid = grid.to(source.dtype)
    return F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=False)


def match_colour(
    warped: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, max_gain: float = 2.0
) -> torch.Tensor:
    """Per-channel mean and spread of `warped` moved to the target's inside `mask` (N,1,S,S).

    A dark-skinned source on a pale target otherwise arrives as a dark face on a light neck
    (seen in the warp probe); the network then spends capacity on relighting it.
    """
    w = mask.float()
    total = w.sum(dim=(2, 3), keepdim=True).clamp(min=1.0)

    def stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = (x.float() * w).sum(dim=(2, 3), keepdim=True) / total
        var = ((x.float() - mean).square() * w).sum(dim=(2, 3), keepdim=True) / total
        return mean, var.sqrt().clamp(min=1e-3)

    mw, sw = stats(warped)
    mt, st = stats(target)
    gain = (st / sw).clamp(1 / max_gain, max_gain)
    return ((warped.float() - mw) * gain + mt).clamp(-1, 1).to(warped.dtype)


# ---------------------------------------------------------------------------- face region


def face_region_points(landmarks: np.ndarray, forehead: float = 0.3) -> np.ndarray:
    """Jaw line plus brows raised `forehead` x chin-to-brow distance: the outline the warp fills."""
    from slimswap.face.mask import face_hull_points

    return face_hull_points(landmarks, forehead)


def face_region_mask(
    landmarks: np.ndarray, size: int, forehead: float = 0.3, feather: float = 0.04
) -> np.ndarray:
    """(size, size) float32 mask of the face outline of crop-pixel landmarks (68, 2).

    Feathered across its edge (a blur of `feather` x size), so the generator's mask floor has
    no step and the warped source fades into the target at the face boundary.
    """
    import cv2

    hull = cv2.convexHull(np.round(face_region_points(landmarks, forehead) * 4).astype(np.int32))
    hard = np.zeros((size, size), np.float32)
    cv2.fillConvexPoly(hard, hull, 1.0, lineType=cv2.LINE_AA, shift=2)
    sigma = max(0.5, feather * size / 2)
    return cv2.GaussianBlur(hard, (0, 0), sigmaX=sigma)


# The target's own openings, by 68-point index: the inner-lip outline (teeth, tongue, the dark
# of an open mouth) and each eye's lid outline (iris and sclera: where the eye looks). They carry
# expression and gaze, not identity, and a source photo cannot provide them (its mouth may be
# closed, its eyes look elsewhere), so a generator with `target_openings` keeps them from the
# target: they are cut out of the region it redraws and stay visible to its target encoder.
OPENINGS = (tuple(range(60, 68)), tuple(range(36, 42)), tuple(range(42, 48)))


def opening_mask(landmarks: np.ndarray, size: int, feather: float = 0.01) -> np.ndarray:
    """(size, size) float32: the target's mouth and eye openings of crop-pixel landmarks (68, 2).

    A closed mouth has an inner outline of (almost) no area, so nothing of the target shows
    there. The edge is feathered by `feather` x size so the cut has no step.
    """
    import cv2

    hard = np.zeros((size, size), np.float32)
    for outline in OPENINGS:
        poly = np.round(np.asarray(landmarks, np.float32)[list(outline)] * 4).astype(np.int32)
        cv2.fillPoly(hard, [poly], 1.0, lineType=cv2.LINE_AA, shift=2)
    sigma = max(0.5, feather * size / 2)
    return cv2.GaussianBlur(hard, (0, 0), sigmaX=sigma)


def guide_region(landmarks: np.ndarray, size: int, openings: bool) -> np.ndarray:
    """The region a generator redraws: the face outline, minus the target's openings if asked."""
    region = face_region_mask(landmarks, size)
    if openings:
        region = region * (1.0 - opening_mask(landmarks, size))
    return region.astype(np.float32)


def guide_inputs(
    source: torch.Tensor,
    source_landmarks: torch.Tensor,
    target: torch.Tensor,
    target_landmarks: torch.Tensor,
    region: torch.Tensor,
    openings: bool = False,
) -> torch.Tensor:
    """(N, 4, S, S): the colour-matched warped source and the face region, the generator's guide.

    source/target in [-1, 1] (N,3,S,S); landmarks (N,68,2) in crop units; region (N,1,S,S).
    openings: the guide of a `target_openings` model (the inner lips steer the warp too; the
    region, cut by the caller, leaves out the target's openings).
    """
    control = CONTROL_POINTS_OPENINGS if openings else CONTROL_POINTS
    warped = warp_source(source, source_landmarks, target_landmarks, control)
    warped = match_colour(warped, target, region)
    return torch.cat([warped, region.to(warped.dtype)], dim=1)


def guide_for_crops(
    target: torch.Tensor,
    target_landmarks: np.ndarray,
    source: torch.Tensor,
    source_landmarks: np.ndarray,
    openings: bool = False,
    region: torch.Tensor | None = None,
) -> torch.Tensor:
    """Inference-side guide (N, 4, S, S) of a warp-guided generator, on the inputs' device.

    target (N, 3, S, S) and source (1, 3, S, S) in [-1, 1], already normalised by the
    swapper; landmarks (N, 68, 2) and (68, 2) in their crops' pixels. openings: the model
    keeps the target's mouth and eye openings (its config's `target_openings`). region: the
    (N, 1, S, S) `guide_region` when the caller drew it already (on the device:
    `face/raster.py`), else it is drawn here with OpenCV.
    """
    n, size, dev = target.shape[0], target.shape[-1], target.device
    lmk_t = np.asarray(target_landmarks, np.float32)
    if region is None:
        regions = np.stack([guide_region(lm, size, openings) for lm in lmk_t])
        region = torch.from_numpy(regions).to(dev)[:, None]

    def to_units(px: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((np.asarray(px, np.float32) + 0.5) / size).to(dev)

    lmk_s = to_units(source_landmarks)[None].expand(n, -1, -1)
    src = source.to(target.dtype).expand(n, -1, -1, -1)
    return guide_inputs(src, lmk_s, target, to_units(lmk_t), region.to(target.dtype), openings)
