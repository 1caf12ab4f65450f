"""The whole-frame invisible watermark: it survives what metadata does not (JPEG and H.264
re-encoding, stripped tags, an exact halving), but not other resizing, cropping or rotation
(see face_mark.py).

Watermark scheme (DWT-DCT with quantisation index modulation). The `invisible-watermark`
package implements DWT-DCT but requires the GUI build of OpenCV (`opencv-python`, which
clashes with the `opencv-python-headless` we use) and torch, so the scheme is written here by
hand on numpy and OpenCV (a one-level Haar LL band is a 2x2 box sum / 2, which cv2.resize
computes in a fraction of PyWavelets' time; the DCT matrix comes from cv2.dct):
- luma only (R, G and B move together, so colour is untouched and a 4:2:0 video keeps it);
- one-level Haar DWT; the LL band is cut into 4x4 blocks (8x8 pixels, aligned with JPEG's
  and H.264's transform grid); two low AC coefficients of each block's DCT each carry one
  bit of a fixed 64-bit signature, by dithered QIM with step `DELTA`;
- which bit a coefficient carries, and its dither, come from a keyed table tiled every 64
  blocks, so the pattern does not depend on the image size and cropping the last row or
  column (odd video sizes) changes nothing;
- reading sums a soft vote (cos of the QIM phase) over every coefficient of a bit; the mark
  is "present" when the decoded 64 bits are within `MAX_BIT_ERRORS` of the signature.

Shaped by a just-noticeable-difference model (v2, issue 24). v1 moved every coefficient all
the way to its lattice point, 1-4 grey levels in every 8x8 block, which showed as blotchy
grain on flat walls and dark hair. Now:
- each block's change is scaled so that its largest pixel change stays within the block's
  JND (slimswap.provenance.jnd: about 1 grey level on flat mid-grey, 0.4-1 in the dark, up
  to `jnd.CAP` in texture), a partial move toward the lattice point that the soft votes
  still read (distortion-compensated QIM);
- blocks whose JND is at least `COARSE_JND` (texture) use a coarse lattice, step
  `COARSE` x `DELTA`: H.264 spends few bits on texture and wipes v1's small steps there,
  while the coarse step survives it. The coarse lattice is nested in the fine one (an odd
  multiple: each coarse point of a bit is a fine point of the same bit), so a full coarse
  move reads right under v1's rule too;
- sub-level changes are rounded with a fixed dither (jnd.dithered_round) so that flat areas
  keep their fraction of a grey level on average instead of rounding to nothing.
Reading tries three readings and keeps the best (`RULES`): v1's rule (fine lattice
everywhere, so files marked before this change read exactly as before), v2's rule (coarse
votes in blocks whose JND, computed again on the image read, says texture; fine votes at
`FINE_WEIGHT` elsewhere), and v2's rule on a copy upscaled 2x: a copy halved on the way (a
re-upload at 50 %) has the 8-pixel grid back at twice its size, and the marks' low
frequencies survive the halving. `accumulate` reads the frames of a video together.

An unmarked image decodes to ~32 random bit errors (binomial(64, 1/2)) under each reading;
P(<= 12) = 2.3e-7 per reading, `FALSE_POSITIVE_BOUND` = 6.9e-7 per image for the three.
v1, measured on unmarked real photos: 3,000 random LFW faces, mean 32.4 errors, std 3.9,
minimum 18; 1,227 CelebA/deepface photos, minimum 20; none within 12. v2's measurements are
in benchmarks/RESULTS.md (issue 24).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from slimswap.provenance import jnd

WATERMARK_ID = "slimswap-dwtdct-v2"
N_BITS = 64
DELTA = 24.0  # QIM step: at 16, H.264 crf 28 flipped up to 15 bits; at 24, 0-2
MAX_BIT_ERRORS = 12  # Hamming threshold; unmarked real photos: 18 or more (see above)
MIN_VOTES = 4 * N_BITS  # fewer coefficients than this (images under ~100 px): no verdict
COARSE = 3  # coarse lattice step in units of DELTA; odd, so it nests in the fine lattice
COARSE_JND = 2.0  # grey levels: a block whose JND allows this much is texture (coarse)
FINE_WEIGHT = 0.5  # v2 rule: weight of a fine-lattice vote against a coarse one
RULES = ("v1", "v2", "v2@2x")  # the readings tried (read_frame_mark), best one kept
MAX_UPSCALED_PIXELS = 4_000_000  # read at twice the size only up to this many pixels
_BLOCK = 4  # DCT block side in the LL band (8x8 pixels)
_COEFS = ((0, 1), (1, 0))  # low AC coefficients: survive JPEG/H.264, invisible at DELTA
_TILE = 64  # keyed tables repeat every 64 blocks (512 pixels)


def _binomial_tail(k: int, n: int = N_BITS) -> float:
    return sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n


FALSE_POSITIVE_BOUND = len(RULES) * _binomial_tail(MAX_BIT_ERRORS)  # per image, union


def _bits_of(text: str) -> np.ndarray:
    return np.unpackbits(
        np.frombuffer(hashlib.sha256(text.encode()).digest()[: N_BITS // 8], np.uint8)
    )


SIGNATURE = _bits_of("slimswap provenance signature v1")  # the 64 bits every output carries


def _tables() -> tuple[np.ndarray, np.ndarray]:
    seed = int.from_bytes(hashlib.sha256(b"slimswap watermark key v1").digest()[:8], "little")
    rng = np.random.default_rng(seed)
    bit_index = rng.integers(0, N_BITS, (_TILE, _TILE, len(_COEFS)))
    dither = rng.uniform(0.0, DELTA, (_TILE, _TILE, len(_COEFS)))
    return bit_index, dither


_BIT_INDEX, _DITHER = _tables()
# the orthonormal 4-point DCT-II matrix (row k = basis vector k)
_DCT = cv2.dct(np.eye(_BLOCK, dtype=np.float32), flags=cv2.DCT_ROWS).T
_ROWS = np.array([c[0] for c in _COEFS])
_COLS = np.array([c[1] for c in _COEFS])


def _usable_luma(rgb: np.ndarray) -> np.ndarray:
    """Luma of the top-left area made of whole 8x8 pixel blocks."""
    h, w = rgb.shape[:2]
    h, w = h - h % (2 * _BLOCK), w - w % (2 * _BLOCK)
    return cv2.cvtColor(rgb[:h, :w].astype(np.float32), cv2.COLOR_RGB2GRAY)


def _ll_blocks(luma: np.ndarray) -> np.ndarray:
    """LL band of a usable luma area as (by, bx, 4, 4) blocks."""
    h, w = luma.shape
    ll = cv2.resize(luma, (w // 2, h // 2), interpolation=cv2.INTER_AREA) * 2.0  # Haar LL
    ny, nx = h // (2 * _BLOCK), w // (2 * _BLOCK)
    return ll.reshape(ny, _BLOCK, nx, _BLOCK).transpose(0, 2, 1, 3)


def _coefficients(blocks: np.ndarray) -> np.ndarray:
    """DCT coefficients _COEFS of every block: (by, bx, len(_COEFS))."""
    return np.einsum("ri,yxij,rj->yxr", _DCT[_ROWS], blocks, _DCT[_COLS], optimize=True)


def _keyed(ny: int, nx: int) -> tuple[np.ndarray, np.ndarray]:
    iy, ix = np.arange(ny) % _TILE, np.arange(nx) % _TILE
    return _BIT_INDEX[iy][:, ix], _DITHER[iy][:, ix]


def _block_jnd(luma: np.ndarray) -> np.ndarray:
    """(by, bx) grey levels each 8x8 block may change unseen."""
    return jnd.block_jnd(luma)


def embed_frame_mark(rgb: np.ndarray) -> np.ndarray:
    """A copy of an RGB uint8 frame carrying the signature (~5 ms for 512x512 on one core)."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(
            f"embed_frame_mark expects RGB uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}"
        )
    luma = _usable_luma(rgb)
    h, w = luma.shape
    blocks = _ll_blocks(luma)
    ny, nx = blocks.shape[:2]
    if ny == 0 or nx == 0:
        return rgb.copy()
    coef = _coefficients(blocks)
    bit_index, dither = _keyed(ny, nx)
    allowed = _block_jnd(luma)
    step = np.where(allowed >= COARSE_JND, COARSE * DELTA, DELTA)[..., None]
    offset = dither + SIGNATURE[bit_index] * (step / 2)
    change = (np.round((coef - offset) / step) * step + offset - coef).astype(np.float32)
    # back to the LL band (only the two touched coefficients are non-zero) ...
    ll_change = np.einsum("ri,yxr,rj->yxij", _DCT[_ROWS], change, _DCT[_COLS], optimize=True)
    # ... where each block's largest pixel change (LL / 2) is held to the block's JND
    peak = 0.5 * np.abs(ll_change).max(axis=(2, 3))
    ll_change *= np.minimum(1.0, allowed / np.maximum(peak, 1e-6))[..., None, None]
    ll_change = ll_change.transpose(0, 2, 1, 3).reshape(ny * _BLOCK, nx * _BLOCK)
    # Haar synthesis with zero detail bands: each LL value / 2 over its 2x2 pixels
    pixel_change = cv2.resize(ll_change, (w, h), interpolation=cv2.INTER_NEAREST) * 0.5
    pixel_change = jnd.dithered_round(pixel_change)
    up = cv2.merge([np.clip(pixel_change, 0, 255).astype(np.uint8)] * 3)
    down = cv2.merge([np.clip(-pixel_change, 0, 255).astype(np.uint8)] * 3)
    out = rgb.copy()
    out[:h, :w] = cv2.subtract(cv2.add(rgb[:h, :w], up), down)  # saturating uint8 arithmetic
    return out


@dataclass(frozen=True)
class FrameMarkReading:
    bit_errors: int  # Hamming distance of the decoded bits to SIGNATURE (0..64), best rule
    votes: int  # coefficients read; below MIN_VOTES the image is too small to judge
    rule: str = "v1"  # the reading rule that gave bit_errors (RULES)
    # per rule, the 64 soft scores (sum of votes per bit): the frames of a video add up
    scores: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    @property
    def readable(self) -> bool:
        return self.votes >= MIN_VOTES

    @property
    def detected(self) -> bool:
        return self.readable and self.bit_errors <= MAX_BIT_ERRORS


def _errors(score: np.ndarray) -> int:
    return int(np.count_nonzero((score < 0).astype(np.uint8) != SIGNATURE))


def decide(scores: dict[str, np.ndarray], votes: int) -> FrameMarkReading:
    """The reading of per-rule soft scores: the rule with the fewest bit errors."""
    errors = {rule: _errors(s) for rule, s in scores.items()}
    rule = min(errors, key=lambda r: (errors[r], RULES.index(r)))
    return FrameMarkReading(bit_errors=errors[rule], votes=votes, rule=rule, scores=scores)


def _scores(
    luma: np.ndarray, rules: Sequence[str], block_jnd: np.ndarray | None = None
) -> tuple[dict[str, np.ndarray], int]:
    """Soft scores per bit under each of `rules` ("v1", "v2"), and the coefficients read.

    `block_jnd`: the JND of each block for v2's texture test (computed here if not given)."""
    blocks = _ll_blocks(luma)
    ny, nx = blocks.shape[:2]
    if ny == 0 or nx == 0:
        return {}, 0
    coef = _coefficients(blocks)
    bit_index, dither = _keyed(ny, nx)
    phase = 2 * np.pi * (coef - dither) / DELTA
    fine = np.cos(phase)  # +1 at a "0" lattice point, -1 at a "1"
    votes = {}
    if "v1" in rules:
        votes["v1"] = fine
    if "v2" in rules:
        coarse = np.cos(phase / COARSE)  # the same on the coarse lattice (same dither)
        allowed = _block_jnd(luma) if block_jnd is None else block_jnd[:ny, :nx]
        votes["v2"] = np.where((allowed >= COARSE_JND)[..., None], coarse, FINE_WEIGHT * fine)
    scores = {
        rule: np.bincount(bit_index.ravel(), weights=v.ravel(), minlength=N_BITS)
        for rule, v in votes.items()
    }
    return scores, int(coef.size)


def read_frame_mark(rgb: np.ndarray) -> FrameMarkReading:
    """Decode the 64 bits by soft voting and compare them with the signature (READINGS)."""
    rgb = np.asarray(rgb)
    luma = _usable_luma(rgb)
    allowed = _block_jnd(luma)
    scores, votes = _scores(luma, ("v1", "v2"), allowed)
    if votes and rgb.shape[0] * rgb.shape[1] <= MAX_UPSCALED_PIXELS:
        # a copy halved on the way (a re-upload at 50 %) has the grid back at twice its
        # size; each block there is a quarter of a block here (its JND: this block's)
        full = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
        h, w = full.shape
        up = cv2.resize(full, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
        up = up[: 2 * h - 2 * h % (2 * _BLOCK), : 2 * w - 2 * w % (2 * _BLOCK)]
        quarter = jnd.jnd_map(full)[::_BLOCK, ::_BLOCK]  # one value per 4x4 pixels
        halved, _ = _scores(up, ("v2",), quarter)
        scores["v2@2x"] = halved["v2"]
    if not votes:
        return FrameMarkReading(bit_errors=N_BITS, votes=0)
    return decide(scores, votes)


def accumulate(readings: Sequence[FrameMarkReading]) -> FrameMarkReading:
    """One reading of many frames of one video: their soft scores summed, rule by rule.

    The frame mark sits at the same pixels in every frame, so its votes add up from frame to
    frame while the content's do not: a re-encode that leaves too little of the mark in any
    one frame (H.264 crf 28) still decodes over a dozen. On an unmarked video the sums are
    random like one frame's, so the false-positive bound is unchanged.
    """
    readable = [r for r in readings if r.readable and r.scores]
    if not readable:
        return FrameMarkReading(bit_errors=N_BITS, votes=0)
    rules = [rule for rule in RULES if all(rule in r.scores for r in readable)]
    scores = {rule: sum(r.scores[rule] for r in readable) for rule in rules}
    return decide(scores, sum(r.votes for r in readable))
