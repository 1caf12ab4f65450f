"""`face/blend.py` on the frames' device: colour, local skin tone, detail and paste-back in torch.

Same steps and constants as the OpenCV versions, batched over every face of a batch of frames
so a GPU keeps the frames from decode to encode: colour statistics are weighted means on the
device, the CIELAB conversion is the sRGB/D65 formula OpenCV uses for float images, and the
inverse warp of paste-back is one `grid_sample` per face through the exact align affine.
Images here are float32 RGB in [0, 255], (N, 3, H, W); results are rounded to whole grey
levels where the OpenCV path writes uint8, so both paths agree to a grey level or two (the
test `tests/test_frame_engine.py` bounds it).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from slimswap.face.align import frame_px_per_crop_px, warp_batch
from slimswap.face.blend import (
    DETAIL_EDGE,
    DETAIL_MIN_SCALE,
    MASK_EPS,
    local_mean_factor,
    roi_paste,
)
from slimswap.face.raster import gaussian_blur

# sRGB (D65) -> XYZ, and the white point, as OpenCV's RGB2Lab for float images
_RGB2XYZ = torch.tensor(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_WHITE = torch.tensor([0.950456, 1.0, 1.088754])


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> CIELAB (L 0..100, a and b about -128..127)."""
    lin = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = torch.einsum("ij,njhw->nihw", _RGB2XYZ.to(rgb.device), lin)
    xyz = xyz / _WHITE.to(rgb.device)[None, :, None, None]
    f = torch.where(xyz > 0.008856, xyz.clamp(min=1e-12) ** (1 / 3), 7.787 * xyz + 16 / 116)
    lum = torch.where(xyz[:, 1:2] > 0.008856, 116 * f[:, 1:2] - 16, 903.3 * xyz[:, 1:2])
    return torch.cat([lum, 500 * (f[:, 0:1] - f[:, 1:2]), 200 * (f[:, 1:2] - f[:, 2:3])], 1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Inverse of `rgb_to_lab` (RGB in [0, 1], clamped)."""
    lum, a, b = lab[:, 0:1], lab[:, 1:2], lab[:, 2:3]
    fy = (lum + 16) / 116
    fx, fz = fy + a / 500, fy - b / 200

    def finv(t: torch.Tensor) -> torch.Tensor:
        return torch.where(t > 0.206893, t**3, (t - 16 / 116) / 7.787)

    y = torch.where(lum > 8.0, fy**3, lum / 903.3)
    xyz = torch.cat([finv(fx), y, finv(fz)], 1) * _WHITE.to(lab.device)[None, :, None, None]
    lin = torch.einsum("ij,njhw->nihw", torch.linalg.inv(_RGB2XYZ).to(lab.device), xyz).clamp(0, 1)
    return torch.where(
        lin <= 0.0031308, 12.92 * lin, 1.055 * lin.clamp(min=1e-12) ** (1 / 2.4) - 0.055
    )


def _round(img: torch.Tensor) -> torch.Tensor:
    return img.round().clamp(0, 255)


def _local_mean(x: torch.Tensor, w: torch.Tensor, sigma: float) -> torch.Tensor:
    """`blend._local_mean`: the same box-averaged smaller copy, blur and bilinear way back."""
    h, width = w.shape[-2:]
    f = local_mean_factor(sigma, min(h, width))
    xw = x * w
    if f > 1:
        xw, w = F.avg_pool2d(xw, f), F.avg_pool2d(w, f)
    mean = gaussian_blur(xw, sigma / f) / gaussian_blur(w, sigma / f).clamp(min=1e-4)
    if f > 1:
        mean = F.interpolate(mean, size=(h, width), mode="bilinear", align_corners=False)
    return mean


def correct_colour(
    swap: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, skin: torch.Tensor
) -> torch.Tensor:
    """`blend.correct_colour` per face: the global LAB transfer, then the local skin tone, in
    one trip to CIELAB and back."""
    w = torch.where(mask > MASK_EPS, mask, torch.zeros_like(mask))
    total = w.sum(dim=(2, 3), keepdim=True)
    lab_s, lab_t = rgb_to_lab(swap / 255), rgb_to_lab(target / 255)

    def stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = (x * w).sum(dim=(2, 3), keepdim=True) / total.clamp(min=1e-12)
        var = ((x - mean) ** 2 * w).sum(dim=(2, 3), keepdim=True) / total.clamp(min=1e-12)
        return mean, var.sqrt()

    (ms, ss), (mt, st) = stats(lab_s), stats(lab_t)
    scale = (st / ss.clamp(min=1e-6)).clamp(0.5, 2.0)
    lab_s = torch.where(total >= 1.0, (lab_s - ms) * scale + mt, lab_s)
    sk = skin.clamp(0, 1)
    size = swap.shape[-1]
    sc, sl = 0.03 * size, 0.08 * size
    d_ab = _local_mean(lab_t[:, 1:], sk, sc) - _local_mean(lab_s[:, 1:], sk, sc)
    d_l = 0.5 * (_local_mean(lab_t[:, :1], sk, sl) - _local_mean(lab_s[:, :1], sk, sl))
    enough = sk.sum(dim=(1, 2, 3), keepdim=True) >= 16
    lab_s = torch.where(enough, lab_s + torch.cat([d_l, d_ab], 1) * sk, lab_s)
    out = _round(lab_to_rgb(lab_s) * 255)
    return torch.where((total >= 1.0) | enough, out, swap)


def frame_detail(frame: torch.Tensor, scale: float) -> torch.Tensor:
    """`blend.frame_detail` of a whole (1, 3, H, W) frame: what a crop `scale` x smaller loses."""
    h, w = frame.shape[-2:]
    small = (max(1, round(h / scale)), max(1, round(w / scale)))
    low = F.interpolate(
        F.interpolate(frame, size=small, mode="area"),
        size=(h, w),
        mode="bilinear",
        align_corners=False,
    )
    return frame - low


def texture_weights(band: torch.Tensor, scale: float) -> torch.Tensor:
    """`blend.texture_weights` of a (1, 3, H, W) band: (1, 1, H, W), 1 on texture, 0 on edges."""
    local = gaussian_blur(band.abs().mean(1, keepdim=True), max(0.5, scale / 2))
    lo, hi = DETAIL_EDGE
    return ((hi - local) / (hi - lo)).clamp(0, 1)


def mask_supports(mask: torch.Tensor) -> list[tuple[int, int, int, int] | None]:
    """`blend.mask_support` of every (N, 1, S, S) mask, with one device -> host copy."""
    keep = mask[:, 0] > MASK_EPS
    used_x, used_y = keep.any(1), keep.any(2)  # (N, S) each: which columns / rows are used
    size = mask.shape[-1]
    idx = torch.arange(size, device=mask.device)
    big = torch.full_like(idx, size)
    lo_x = torch.where(used_x, idx, big).amin(1)
    hi_x = torch.where(used_x, idx, -1).amax(1)
    lo_y = torch.where(used_y, idx, big).amin(1)
    hi_y = torch.where(used_y, idx, -1).amax(1)
    boxes = torch.stack([lo_x - 1, lo_y - 1, hi_x + 1, hi_y + 1], 1).cpu().tolist()
    return [None if b[2] < b[0] + 2 else tuple(b) for b in boxes]


def paste_back(
    frame: torch.Tensor,
    crop: torch.Tensor,
    affine: np.ndarray,
    mask: torch.Tensor,
    detail: torch.Tensor | None = None,
    support: tuple[int, int, int, int] | None = None,
    openings: torch.Tensor | None = None,
) -> torch.Tensor:
    """`blend.paste_back` (feather) of one face, in place: frame (1, 3, H, W) and crop
    (1, 3, S, S) floats in [0, 255], mask/detail/openings (1, 1, S, S). Only the frame rectangle the
    mask lands on is warped and composited (`blend.frame_roi`; support: the mask's crop
    rectangle from `mask_supports`, computed here when not given). Returns the frame."""
    if support is None:
        support = mask_supports(mask)[0]
    placed = roi_paste(affine, support, tuple(frame.shape[-2:]))
    if placed is None:
        return frame
    to_roi, (x0, y0, x1, y1) = placed
    size = (y1 - y0, x1 - x0)
    roi = frame[:, :, y0:y1, x0:x1]
    warped = warp_batch(crop, [0], [to_roi], size, "border")
    zero = torch.zeros_like(mask)
    with_detail = detail is not None or openings is not None
    parts = [mask] + ([zero if w is None else w for w in (detail, openings)] if with_detail else [])
    weights = warp_batch(torch.cat(parts, 1), [0], [to_roi], size, "zeros")
    alpha = weights[:, :1]
    alpha = torch.where(alpha > MASK_EPS, alpha, torch.zeros_like(alpha)).clamp(0, 1)
    scale = frame_px_per_crop_px(affine)
    if with_detail and scale > DETAIL_MIN_SCALE:
        band = frame_detail(roi, scale)
        where = torch.maximum(weights[:, 1:2] * texture_weights(band, scale), weights[:, 2:3])
        warped = _round(warped + where * band)
    frame[:, :, y0:y1, x0:x1] = _round(roi + alpha * (warped - roi))
    return frame
