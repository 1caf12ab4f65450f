"""Putting a swapped crop back into its frame: colour matching and seamless compositing.

All functions take and return RGB uint8 arrays and never modify their inputs.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from slimswap.face.align import frame_px_per_crop_px, invert_affine, transform_points
from slimswap.face.mask import box_mask

Blend = Literal["feather", "poisson"]
# pixels with a mask weight below this are left to the frame (Gaussian tails are ~1e-6)
MASK_EPS = 1e-3
# Poisson solves over mask > this; the soft mask then fades the result in, so no seam shows
POISSON_THRESHOLD = 0.05


def _to_lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def _weighted_stats(lab: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of each LAB channel, weighted; only pixels with weight count."""
    w = weights.reshape(-1)
    keep = w > MASK_EPS
    w, x = w[keep].astype(np.float64), lab.reshape(-1, 3)[keep].astype(np.float64)
    total = w.sum()
    mean = w @ x / total
    std = np.sqrt(w @ (x - mean) ** 2 / total)
    return mean, std


def color_transfer(
    swapped_crop: np.ndarray,
    target_crop: np.ndarray,
    mask: np.ndarray,
    max_scale: float = 2.0,
) -> np.ndarray:
    """Give the swap the target's skin tone: match LAB mean and std inside the mask.

    Reinhard-style transfer, written by hand (a few lines of numpy). LAB separates lightness
    from colour, so a darker or warmer target skin moves the swap without tinting it.
    Statistics are weighted by `mask` (the face area) so background and hair do not count;
    the std ratio is clipped to [1/max_scale, max_scale] so a flat or noisy region cannot
    blow the contrast up. The whole crop is transformed; the caller blends with the mask.
    """
    if swapped_crop.shape != target_crop.shape:
        raise ValueError(f"crop shapes differ: {swapped_crop.shape} vs {target_crop.shape}")
    weights = np.clip(np.asarray(mask, np.float32), 0.0, 1.0)
    if weights.shape != swapped_crop.shape[:2]:
        raise ValueError(f"mask shape {weights.shape} does not match crop {swapped_crop.shape[:2]}")
    if weights.sum() < 1.0:
        return swapped_crop.copy()
    lab = _reinhard(_to_lab(swapped_crop), _to_lab(target_crop), weights, max_scale)
    return _from_lab(lab)


def _from_lab(lab: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB)
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def _reinhard(
    lab_src: np.ndarray, lab_dst: np.ndarray, weights: np.ndarray, max_scale: float
) -> np.ndarray:
    """The LAB core of `color_transfer`: weighted mean and std of lab_src moved to lab_dst's."""
    mean_src, std_src = _weighted_stats(lab_src, weights)
    mean_dst, std_dst = _weighted_stats(lab_dst, weights)
    scale = np.clip(std_dst / np.maximum(std_src, 1e-6), 1.0 / max_scale, max_scale)
    return ((lab_src - mean_src) * scale + mean_dst).astype(np.float32)


def local_mean_factor(sigma: float, size: int) -> int:
    """The power of two a local mean of width `sigma` is computed smaller by (sigma >= ~2 px
    there): the mean is smooth, so a quarter or an eighth of the pixels loses nothing visible
    and the blur costs 16-64x less (the live loop's paste went from 34 to ~10 ms)."""
    f = 1
    while f * 2 <= sigma / 2 and size % (f * 2) == 0:
        f *= 2
    return f


def _local_mean(x: np.ndarray, weights: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian mean of x (H, W, C) over the weighted pixels only (normalised convolution):
    eyes, lips and background outside `weights` never bleed into the skin's local colour.
    Computed `local_mean_factor` times smaller (box-averaged, exact for a power of two) and
    brought back by bilinear interpolation; `blend_torch` does the same steps."""
    h, w = weights.shape
    f = local_mean_factor(sigma, min(h, w))
    xw = x * weights[..., None]
    if f > 1:
        small = (w // f, h // f)
        xw = cv2.resize(xw, small, interpolation=cv2.INTER_AREA)
        weights = cv2.resize(weights, small, interpolation=cv2.INTER_AREA)
    den = np.maximum(cv2.GaussianBlur(weights, (0, 0), sigma / f), 1e-4)
    planes = [
        cv2.GaussianBlur(np.ascontiguousarray(xw[..., c]), (0, 0), sigma / f) / den
        for c in range(x.shape[2])
    ]  # one denominator for every plane
    mean = np.stack(planes, axis=-1)
    if f > 1:
        mean = cv2.resize(mean, (w, h), interpolation=cv2.INTER_LINEAR)
        if mean.ndim == 2:
            mean = mean[..., None]
    return mean


def _skin_tone(
    lab_s: np.ndarray,
    lab_t: np.ndarray,
    w: np.ndarray,
    chroma_sigma: float = 0.03,
    lightness_sigma: float = 0.08,
    lightness: float = 0.5,
) -> np.ndarray:
    """The local skin-tone step of `correct_colour`, in LAB (w: skin weights, >= 16 in total)."""
    size = lab_s.shape[0]
    sc, sl = chroma_sigma * size, lightness_sigma * size
    both = np.concatenate([lab_t, lab_s], axis=-1)  # one pass for the target and the swap
    ab = _local_mean(both[..., [1, 2, 4, 5]], w, sc)
    lum = _local_mean(both[..., [0, 3]], w, sl)
    delta = np.concatenate(
        [lightness * (lum[..., :1] - lum[..., 1:]), ab[..., :2] - ab[..., 2:]], -1
    )
    return (lab_s + delta * w[..., None]).astype(np.float32)


def correct_colour(
    swapped_crop: np.ndarray, target_crop: np.ndarray, mask: np.ndarray, skin: np.ndarray
) -> np.ndarray:
    """The swap's colours made the target's: `color_transfer` (the face's mean and spread in
    CIELAB), then the target's local skin tone, in one trip to CIELAB and back.

    A global transfer matches the face's mean and spread, but a source's red cheeks, a
    generator's pink-orange patches or a lamp's warm side stay where they are. So the low
    frequencies of the skin, in CIELAB (perceptual: a step in a and b reads as the same
    colour change everywhere), are then replaced by the target's: chroma (a, b) at 3 % of the
    crop size, fully; lightness at 8 %, by half, so the light of the target's scene arrives
    while the source's own shading (the shape of its nose and cheekbones, which identity is
    read from) mostly stays. Only `skin` (crop-sized weights in [0, 1]: the face without eyes,
    brows and lips, `mask.skin_mask`) is measured and changed. Written by hand with cv2
    (normalised Gaussian means); scikit-image has no masked local colour transfer.
    """
    if swapped_crop.shape != target_crop.shape:
        raise ValueError(f"crop shapes differ: {swapped_crop.shape} vs {target_crop.shape}")
    weights = np.clip(np.asarray(mask, np.float32), 0.0, 1.0)
    w = np.clip(np.asarray(skin, np.float32), 0.0, 1.0)
    if weights.sum() < 1.0 and w.sum() < 16:
        return swapped_crop.copy()
    lab_s, lab_t = _to_lab(swapped_crop), _to_lab(target_crop)
    if weights.sum() >= 1.0:
        lab_s = _reinhard(lab_s, lab_t, weights, 2.0)
    if w.sum() >= 16:
        lab_s = _skin_tone(lab_s, lab_t, w)
    return _from_lab(lab_s)


def mask_support(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The crop rectangle (x0, y0, x1, y1), one pixel wider each way, where mask > MASK_EPS."""
    ys, xs = np.nonzero(mask > MASK_EPS)
    if len(xs) == 0:
        return None
    return int(xs.min()) - 1, int(ys.min()) - 1, int(xs.max()) + 1, int(ys.max()) + 1


def roi_paste(
    affine: np.ndarray, support: tuple[int, int, int, int] | None, frame_hw: tuple[int, int]
) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """(crop -> rectangle affine, the frame rectangle) of a paste-back, or None when the mask
    lands nowhere: both paste-backs (this module's and blend_torch's) warp through this."""
    inverse = invert_affine(affine)
    roi_box = frame_roi(support, inverse, frame_hw)
    if roi_box is None:
        return None
    to_roi = inverse.copy()
    to_roi[:, 2] -= roi_box[:2]
    return to_roi, roi_box


def frame_roi(
    support: tuple[int, int, int, int] | None, inverse: np.ndarray, frame_hw: tuple[int, int]
) -> tuple[int, int, int, int] | None:
    """The frame rectangle (x0, y0, x1, y1) a crop rectangle (`mask_support`) lands on through
    the crop -> frame affine, or None. Both paste-backs (this one and blend_torch's) work on
    this rectangle only, so they cost what the face covers and agree on the detail band."""
    if support is None:
        return None
    cx0, cy0, cx1, cy1 = support
    corners = np.array([[cx0, cy0], [cx1, cy0], [cx1, cy1], [cx0, cy1]], np.float64)
    pts = transform_points(corners, inverse)
    h, w = frame_hw
    x0 = max(0, int(np.floor(pts[:, 0].min())) - 1)
    y0 = max(0, int(np.floor(pts[:, 1].min())) - 1)
    x1 = min(w, int(np.ceil(pts[:, 0].max())) + 2)
    y1 = min(h, int(np.ceil(pts[:, 1].max())) + 2)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def _poisson(warped: np.ndarray, roi: np.ndarray, soft_mask: np.ndarray) -> np.ndarray:
    """cv2.seamlessClone of the warped crop into the ROI, aligned pixel for pixel.

    seamlessClone places the mask's bounding box centred on `p` using integer halves
    (p - size // 2), so passing the box's own x + w // 2 keeps source and destination
    registered. Too small a region (under 3 px) is returned unchanged.
    """
    hard = (soft_mask > POISSON_THRESHOLD).astype(np.uint8) * 255
    hard[0, :] = hard[-1, :] = 0  # seamlessClone needs a border of known (frame) pixels
    hard[:, 0] = hard[:, -1] = 0
    x, y, bw, bh = cv2.boundingRect(hard)
    if bw < 3 or bh < 3:
        return roi.copy()
    center = (x + bw // 2, y + bh // 2)
    return cv2.seamlessClone(
        np.ascontiguousarray(warped), np.ascontiguousarray(roi), hard, center, cv2.NORMAL_CLONE
    )


# below this many frame pixels per crop pixel, the crop holds all the detail the frame has
DETAIL_MIN_SCALE = 1.15


def frame_detail(roi: np.ndarray, scale: float) -> np.ndarray:
    """The frame's detail finer than a crop `scale` times smaller can hold (float32, signed).

    A face larger in the frame than the model's crop comes back upsampled, i.e. soft; this
    band (the frame minus itself taken down to the crop's pixel pitch and back up) is what
    the crop lost, and nothing else.
    """
    h, w = roi.shape[:2]
    small = (max(1, round(w / scale)), max(1, round(h / scale)))
    low = cv2.resize(
        cv2.resize(roi, small, interpolation=cv2.INTER_AREA), (w, h), interpolation=cv2.INTER_LINEAR
    )
    return roi.astype(np.float32) - low.astype(np.float32)


# grey levels of local detail (mean |band| over a crop pixel): texture below the first is laid
# back whole, an edge above the second not at all. Measured on a large face with glasses
# (deepface id09, 580 px): skin 3-5, stubble 8-15, the rims' edges 20 and more; at (12, 20)
# the rims still showed as faint lines, at (8, 16) they are gone and the skin keeps its pores.
DETAIL_EDGE = (8.0, 16.0)


def texture_weights(band: np.ndarray, scale: float) -> np.ndarray:
    """(H, W) weights in [0, 1]: 1 where `band` (`frame_detail`) is texture, 0 where an edge.

    Why: the target's skin texture makes an enlarged swap look sharp, but the same band holds
    the target's own strong edges - a glasses rim, a strand of hair, a deep fold - and laid
    over the redrawn face those come back as translucent ghosts (the rims of a target's
    glasses on a face whose eyes the generator moved). Texture is weak and everywhere, an
    edge strong and local: the band's local mean magnitude tells them apart.
    """
    magnitude = np.abs(band).mean(axis=-1) if band.ndim == 3 else np.abs(band)
    local = cv2.GaussianBlur(magnitude, (0, 0), max(0.5, scale / 2))
    lo, hi = DETAIL_EDGE
    return np.clip((hi - local) / (hi - lo), 0.0, 1.0)


def paste_back(
    frame: np.ndarray,
    swapped_crop: np.ndarray,
    affine: np.ndarray,
    mask: np.ndarray | None = None,
    blend: Blend = "feather",
    detail: np.ndarray | None = None,
    openings: np.ndarray | None = None,
) -> np.ndarray:
    """A new frame with `swapped_crop` warped back to where `align` cut it out.

    affine: the frame -> crop matrix that `align` returned; its exact inverse maps the crop
    back. mask: crop-sized float weights in [0, 1] (default: a feathered box). Only the
    frame rectangle under the mask is warped and composited, so the cost depends on the
    face size, not the frame size. "feather" alpha-blends with the mask; "poisson" first
    solves cv2.seamlessClone over the mask (matching the frame's lighting at the border),
    then fades that in with the same mask so pixels outside it stay exactly unchanged.
    detail: crop-sized weights in [0, 1] where the frame's own fine texture is laid back over
    a face that the frame shows larger than the crop (`frame_detail`, its edges left out:
    `texture_weights`): the skin, not the swapped features. openings: crop-sized weights
    where all of the frame's detail is laid back, edges too (the target's own mouth and
    eyes, which the model keeps). Both ignored when the face is not enlarged.
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    if swapped_crop.ndim != 3 or swapped_crop.shape[2] != 3 or swapped_crop.dtype != np.uint8:
        raise ValueError(
            f"crop must be (S, S, 3) uint8, got {swapped_crop.shape} {swapped_crop.dtype}"
        )
    if blend not in ("feather", "poisson"):
        raise ValueError(f"blend must be 'feather' or 'poisson', got {blend!r}")
    crop_hw = swapped_crop.shape[:2]
    mask = box_mask(crop_hw) if mask is None else np.asarray(mask, np.float32)
    if mask.shape != crop_hw:
        raise ValueError(f"mask shape {mask.shape} does not match crop {crop_hw}")

    out = frame.copy()
    placed = roi_paste(affine, mask_support(mask), frame.shape[:2])
    if placed is None:
        return out
    to_roi, (x0, y0, x1, y1) = placed
    size = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(
        swapped_crop, to_roi, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    weights = cv2.warpAffine(
        mask, to_roi, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    roi = frame[y0:y1, x0:x1]
    if blend == "poisson":
        warped = _poisson(warped, roi, weights)
    scale = frame_px_per_crop_px(affine)
    if (detail is not None or openings is not None) and scale > DETAIL_MIN_SCALE:

        def to_frame(weights: np.ndarray) -> np.ndarray:
            return cv2.warpAffine(
                np.asarray(weights, np.float32), to_roi, size, flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT, borderValue=0,
            )  # fmt: skip

        band = frame_detail(roi, scale)
        where = np.zeros(band.shape[:2], np.float32)
        if detail is not None:
            where = to_frame(detail) * texture_weights(band, scale)
        if openings is not None:
            where = np.maximum(where, to_frame(openings))
        sharpened = warped.astype(np.float32) + where[..., None] * band
        warped = np.clip(np.round(sharpened), 0, 255).astype(np.uint8)
    alpha = np.clip(weights, 0.0, 1.0)[..., None]
    base = roi.astype(np.float32)
    mixed = base + alpha * (warped.astype(np.float32) - base)
    out[y0:y1, x0:x1] = np.clip(np.round(mixed), 0, 255).astype(np.uint8)
    return out
