"""YUV 4:2:0 planes <-> RGB on a torch device: the GPU frame path's colour conversions.

Why: on the H200 the accurate YUV -> RGB conversion at decode and RGB -> YUV at encode cost
several times the codec's own work (swscale with accurate rounding and full chroma: ~22 and
~18 ms a 1280x720 frame on one core, against ~5 ms for the decode itself), and the host had
to do them for every frame. Uploaded as planes (1.5 bytes a pixel instead of 3) they are a
few elementwise kernels. The CPU path keeps swscale (`media.read_frames`, `VideoWriter`);
these functions reproduce what it gives within a grey level or two (tests/test_video_planes.py
holds them to it), so the two paths' outputs stay interchangeable.

Frames are I420 as FFmpeg's `yuv420p` and PyAV's `to_ndarray(format="yuv420p")` lay them
out: one (H * 3 / 2, W) uint8 array, Y on top, then U and V planes of (H / 2, W / 2) each
stored as H / 4 rows of W. Even sizes only (`media.plane_format` says when a video has them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from slimswap.yuv import ENCODE_MATRIX, KR_KB, levels


def split(planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, H*3/2, W) I420 -> Y (N, H, W), U and V (N, H/2, W/2), views where possible."""
    n, rows, w = planes.shape
    h = rows * 2 // 3
    y = planes[:, :h]
    chroma = planes[:, h:].reshape(n, 2, h // 2, w // 2)
    return y, chroma[:, 0], chroma[:, 1]


def _upsample_chroma(uv: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) chroma -> (N, C, 2h, 2w): vertically between rows (sample centres),
    horizontally co-sited with the even luma columns (H.264's default "left" location).

    Measured against swscale's accurate decode of three of the clips: max 2-4 levels, mean
    0.03-0.06 this way; centre-sited bilinear or bicubic both ways: max 5-9, mean 0.06-0.16.
    """
    n, c, h, w = uv.shape
    rows = F.interpolate(uv, size=(2 * h, w), mode="bilinear", align_corners=False)
    right = torch.cat([rows[..., 1:], rows[..., -1:]], -1)
    return torch.stack([rows, (rows + right) * 0.5], -1).reshape(n, c, 2 * h, 2 * w)


def i420_to_rgb(
    planes: torch.Tensor, matrix: str = "bt601", full_range: bool = False
) -> torch.Tensor:
    """(N, H*3/2, W) uint8 I420 -> (N, 3, H, W) float32 RGB in whole levels 0..255.

    Chroma is brought to full size as H.264's default siting places it (`_upsample_chroma`);
    values are rounded to whole levels, as a decoded uint8 frame has them, so the rest of the
    path sees what the CPU path sees.
    """
    kr, kb = KR_KB[matrix]
    kg = 1.0 - kr - kb
    off, ly, lc = levels(full_range)
    y, u, v = split(planes)
    uv = torch.stack([u, v], 1).float()
    uv = _upsample_chroma(uv)
    yf = (y.float() - off) * (255.0 / ly)
    cb, cr = (uv[:, 0] - 128.0) * (255.0 / lc), (uv[:, 1] - 128.0) * (255.0 / lc)
    r = yf + 2 * (1 - kr) * cr
    b = yf + 2 * (1 - kb) * cb
    g = (yf - kr * r - kb * b) / kg
    return torch.stack([r, g, b], 1).round_().clamp_(0, 255)


def rgb_to_i420(rgb: torch.Tensor, matrix: str = ENCODE_MATRIX) -> torch.Tensor:
    """(N, 3, H, W) RGB 0..255 (rounded to whole levels first, as a downloaded frame is) ->
    (N, H*3/2, W) uint8 I420, limited range: what `VideoWriter` hands the encoder.

    Chroma is the mean of each 2x2 block's full-resolution chroma (centre-sited, as swscale
    downscales it)."""
    kr, kb = KR_KB[matrix]
    kg = 1.0 - kr - kb
    off, ly, lc = levels(False)
    x = rgb.float().round().clamp(0, 255)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    luma = kr * r + kg * g + kb * b
    y = off + luma * (ly / 255.0)
    cb = (b - luma) / (2 * (1 - kb))
    cr = (r - luma) / (2 * (1 - kr))
    uv = F.avg_pool2d(torch.stack([cb, cr], 1), 2) * (lc / 255.0) + 128.0
    n, h, w = y.shape
    out = torch.empty(n, h * 3 // 2, w, dtype=torch.uint8, device=rgb.device)
    out[:, :h] = y.round().clamp(0, 255).to(torch.uint8)
    out[:, h:] = uv.round().clamp(0, 255).to(torch.uint8).reshape(n, h // 2, w)
    return out
