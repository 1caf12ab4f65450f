"""How much the marks may change each pixel unseen: a just-noticeable-difference (JND) map.

Why (issue 24): both marks used to change every part of a frame by the same few grey levels.
In texture that is masked, but in flat and dark areas (a plain wall, dark hair, smooth skin)
a coherent change of 1-2 grey levels over 8x8 pixels shows as blotchy mottling at 100 %,
which PSNR over the frame does not see. The marks now scale their change, block by block, to
this map: little in flat and dark areas, the full step in texture.

The model is the usual pixel-domain JND (Chou & Li 1995; Yang et al. 2005): a luminance
term and a texture-masking term. Its constants are not those papers': theirs predict the
visibility of single-pixel noise on a CRT and allow 3 or more levels everywhere (20 in the
black), whereas the marks' change is smooth, which the eye sees best, on displays that show
the shadows. They were set by looking at 3x crops of the bundled clip (grey wall, dark hair,
cheek: at FLAT 1.5 the wall shows a faint grain, at 2 the cheek a faint mottling; at 1 none)
and checked on shared-data frames and photos with benchmarks/watermark_visibility.py
(benchmarks/RESULTS.md, issue 24). Per 8x8 block (the frame mark's block):
- luminance ("shade"): 1 where the block's mean luma is at least `DARK_KNEE`, falling
  linearly to `DARK_FLOOR` at black (the eye adapted to a shadow sees smaller steps; the
  issue's dark hair sits at luma 35-60);
- texture: `FLAT` grey levels, plus `TEXTURE` per grey level of activity above
  `ACTIVITY_FLOOR` (activity: the RMS of the luma's fine detail, luma minus a Gaussian blur
  of `DETAIL_SIGMA`, in the least textured quarter of the block, so that an edge through
  one corner does not count as texture for the flat rest);
- JND = shade x texture term, at most `CAP` levels. Texture in the shadows is where it is
  closest to showing (the worst flat/dark block of the bundled clip, 2.5 levels, is dark
  hair with strands, std 8; at 3x it reads as hair). Scaling the texture part by shade**3
  took that block to 1.9 but left a swap of the clip re-encoded at H.264 crf 23 at up to 12
  of 64 bit errors per frame (the threshold) instead of 9: not taken.
No maintained Python library computes a JND map (scikit-image, OpenCV and Kornia have none);
it is a few array operations in OpenCV, written here.
"""

from __future__ import annotations

import cv2
import numpy as np

FLAT = 1.0  # grey levels of smooth change allowed in a flat area of mid or high luma
DARK_KNEE = 96.0  # below this background luma the allowance falls ...
DARK_FLOOR = 0.4  # ... linearly to this share at black
TEXTURE = 2.0  # extra grey levels per grey level of activity above ACTIVITY_FLOOR
ACTIVITY_FLOOR = 1.0  # activity of a smooth area (noise of a camera or a codec)
CAP = 12.0  # never more than this (a coarse frame-mark step fits in strong texture)
DETAIL_SIGMA = 1.0
BLOCK = 8  # the map's resolution: the frame mark's block


def block_jnd(luma: np.ndarray) -> np.ndarray:
    """(H // BLOCK, W // BLOCK) grey levels of smooth change each 8x8 block may take unseen.

    Background: the block's mean luma. Activity: the RMS of the luma's fine detail (luma
    minus a Gaussian blur of DETAIL_SIGMA) in each 4x4 quarter of the block, the least of the
    four, so that a block only counts as texture when texture fills it (an edge through one
    corner masks nothing in the flat rest). Whole blocks only (the top-left ones).
    """
    h, w = luma.shape[0] - luma.shape[0] % BLOCK, luma.shape[1] - luma.shape[1] % BLOCK
    luma = np.ascontiguousarray(luma[:h, :w], np.float32)
    if h == 0 or w == 0:
        return np.zeros((h // BLOCK, w // BLOCK), np.float32)
    background = cv2.resize(luma, (w // BLOCK, h // BLOCK), interpolation=cv2.INTER_AREA)
    detail = luma - cv2.GaussianBlur(luma, (0, 0), DETAIL_SIGMA, borderType=cv2.BORDER_REFLECT)
    q = BLOCK // 2
    quarters = np.sqrt(cv2.resize(detail * detail, (w // q, h // q), interpolation=cv2.INTER_AREA))
    activity = quarters.reshape(h // BLOCK, 2, w // BLOCK, 2).min(axis=(1, 3))
    shade = np.clip(background / DARK_KNEE, 0.0, 1.0) * (1.0 - DARK_FLOOR) + DARK_FLOOR
    texture = TEXTURE * np.maximum(activity - ACTIVITY_FLOOR, 0.0)
    return np.minimum(shade * (FLAT + texture), CAP)


def jnd_map(luma: np.ndarray) -> np.ndarray:
    """`block_jnd` for every pixel of a luma image of any size (constant over each block)."""
    h, w = luma.shape
    pad_y, pad_x = -h % BLOCK, -w % BLOCK
    padded = cv2.copyMakeBorder(
        np.ascontiguousarray(luma, np.float32), 0, pad_y, 0, pad_x, cv2.BORDER_REFLECT
    )
    blocks = block_jnd(padded)
    full = cv2.resize(blocks, (w + pad_x, h + pad_y), interpolation=cv2.INTER_NEAREST)
    return full[:h, :w]


def _dither_tile() -> np.ndarray:
    rng = np.random.default_rng(24)
    return rng.random((DITHER_TILE, DITHER_TILE), dtype=np.float32)


DITHER_TILE = 64
_DITHER = _dither_tile()


def dithered_round(change: np.ndarray, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Integer change whose local mean is `change`: floor(change + u), u a fixed random tile.

    Why: a change of less than half a grey level rounds to nothing, so a mark held below
    1 grey level in flat areas would vanish there; with the dither its low frequencies (what
    the marks' coefficients are) survive, at the cost of isolated +-1 pixels that the eye
    does not see as a blotch. Where the change is 0 nothing moves (0 <= u < 1).
    """
    h, w = change.shape
    x0, y0 = origin[0] % DITHER_TILE, origin[1] % DITHER_TILE
    reps = (-(-(h + y0) // DITHER_TILE), -(-(w + x0) // DITHER_TILE))
    u = np.tile(_DITHER, reps)[y0 : y0 + h, x0 : x0 + w]
    return np.floor(change + u)
