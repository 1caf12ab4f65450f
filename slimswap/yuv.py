"""YUV facts shared by the host and the device: the colour matrices and video levels, and the
one host-side step the GPU frame path needs (`add_luma_change`). numpy only: the mark worker
processes import it (they import no torch). The torch conversions are `video_planes.py`.
"""

from __future__ import annotations

import numpy as np

# (Kr, Kb) of the matrices swscale knows; a video without a colour tag decodes as BT.601, as
# swscale takes it (media._rgb); the writer tags and encodes BT.709
KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593),
         "smpte240m": (0.212, 0.087), "fcc": (0.30, 0.11)}  # fmt: skip
ENCODE_MATRIX = "bt709"
# FFmpeg's AVColorSpace codes -> matrix (the rest, unspecified among them, decode as BT.601)
COLORSPACES = {1: "bt709", 4: "fcc", 5: "bt601", 6: "bt601", 7: "smpte240m", 9: "bt2020", 10: "bt2020"}  # fmt: skip


def levels(full_range: bool) -> tuple[float, float, float]:
    """(luma offset, luma span, chroma span) of 8-bit video levels."""
    return (0.0, 255.0, 255.0) if full_range else (16.0, 219.0, 224.0)


def add_luma_change(planes: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """I420 planes of the RGB frame `before`, carrying the change `after - before` made to it.

    The invisible marks change R, G and B alike (luma only), so their change is a change of
    Y alone: (Kr dR + Kg dG + Kb dB) * 219 / 255 levels of Y, U and V untouched. So the marks
    run on the RGB frame as everywhere else and the encoder still gets the planes converted
    on the device. Y is rounded once more than a conversion of the marked frame would be: at
    most one level from it where the mark moved a pixel.
    """
    kr, kb = KR_KB[ENCODE_MATRIX]
    h = before.shape[0] - before.shape[0] % 2
    w = before.shape[1] - before.shape[1] % 2
    d = after[:h, :w].astype(np.float32) - before[:h, :w]
    change = (kr * d[..., 0] + (1.0 - kr - kb) * d[..., 1] + kb * d[..., 2]) * (219.0 / 255.0)
    if not change.any():
        return planes
    out = planes.copy()
    out[:h, :w] = np.clip(np.rint(out[:h, :w] + change), 0, 255).astype(np.uint8)
    return out
