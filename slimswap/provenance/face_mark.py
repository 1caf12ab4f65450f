"""The face-anchored invisible watermark: survives resizing, cropping and small rotations.

Why a second mark: the whole-frame mark (frame_mark.py) reads its bits on a fixed 8-pixel
grid counted from the top-left corner, so a 50 % resize, a 10 % crop or a 2 degree rotation
moves every block off that grid and the bits are gone; that is what a re-upload does. The
face in the picture, though, is found again after all three, and the 5 keypoints the pipeline
already has when it writes a frame pin down a coordinate system that moves with the picture.

Scheme (written by hand on numpy and OpenCV; no maintained library does face-anchored marks):
- the face's similarity transform (slimswap.face.align, 5 keypoints -> template) maps it to a
  128x128 crop; the crop's luma is cut into 16x16 blocks of 8x8 pixels, and three low DCT
  coefficients of every block carry one bit each of the same 64-bit signature as the frame
  mark (12 coefficients per bit, which bit and the dither from a keyed table), by dithered
  QIM with step `DELTA`;
- the coefficients are measured in units of the crop's own contrast (luma std of its inner
  part scaled to `REFERENCE_STD`), so a brightness/contrast change moves nothing (up to
  a contrast of `MAX_STD`);
- embedding computes the change in the crop, warps it back into the frame with the inverse
  transform, and repeats `ITERATIONS` times on the result, so interpolation and rounding
  losses of the round trip are corrected; R, G and B move together (luma only);
- the change is held, pixel by pixel and at every iteration, to the just-noticeable
  difference of the unmarked frame (slimswap.provenance.jnd; issue 24: the full step showed
  as mottling on smooth skin and on the hair and wall inside the face's box), together with
  the frame mark's change there; the iterations re-fit what the bound cost, moving the
  change into the face's texture (eyes, brows, lips, hairline) where the JND is larger. The
  change is rounded with the JND module's fixed dither, so fractions of a grey level stay;
- when a face fills most of the frame, the full change would cost more than `MIN_PSNR`
  allows, and it is scaled down to fit (distortion-compensated QIM: coefficients stop short
  of their lattice points, which the soft votes still read; such faces are large, so they
  keep a margin against resizing);
- reading re-detects the face (dlib), and because landmarks found on a resized or rotated
  copy are off by up to ~8 % in scale, ~6 degrees and a few pixels, searches a grid of
  scales, rotations and shifts around that alignment (all shifts of one warp at once, with
  one filter per coefficient), keeping the alignment whose soft bits agree best with the
  signature.

Decision rule: each face is read twice (`READINGS`), plainly and with each block's votes
weighted by its JND on the image read (issue 24: smooth-skin blocks carry smaller moves than
the face's texture), and the better reading at its best alignment is "marked" when at most
`MAX_BIT_ERRORS` of its 64 bits differ from the signature. On an unmarked face every
alignment decodes to random bits (binomial(64, 1/2) errors) under either reading, and the
best of `N_ALIGNMENTS` alignments is below the threshold with probability at most
READINGS * N_ALIGNMENTS * P(binomial <= MAX_BIT_ERRORS) (`FALSE_POSITIVE_BOUND`, union bound),
7.2e-8 per face. Measured (`slimswap eval watermark`, benchmarks/RESULTS.md, issue 24
section): 0 of 1,035 faces in 1,000 real unswapped photos read as marked; with the JND the
face mark alone decodes on 197 of 200 marked photos, after halving on 160, 10 % crops
197, 2 degree rotations 195 (before the JND: 200, 192, 200, 199).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import cv2
import numpy as np

from slimswap.face.align import estimate_affine, frame_px_per_crop_px, invert_affine
from slimswap.provenance import jnd
from slimswap.provenance.frame_mark import N_BITS, SIGNATURE

WATERMARK_ID = "slimswap-facemark-v1"
SIZE = 128  # aligned crop side (template scaled to it)
BLOCK = 8
GRID = SIZE // BLOCK
COEFS = ((0, 1), (1, 0), (1, 1))  # low AC coefficients: survive halving and JPEG q50
DELTA = 48.0  # QIM step in contrast-normalised units
REFERENCE_STD = 50.0  # crop contrast the coefficients are scaled to
MAX_STD = 70.0  # above this contrast the step stops growing
MIN_PSNR = 41.5  # dB over the frame; the frame mark's ~46 dB on top keeps the total >= 40
ITERATIONS = 6
# The change is blurred in the crop before it is warped into the frame: the three DCT basis
# functions per block are smooth, but neighbouring blocks take independent values, and on a
# face several times the crop's size those jumps showed as a visible 8x8 grid on smooth skin.
# The blur removes the jumps; the low coefficients it softens are re-fitted by the extra
# iterations (6: with 4 a lossless swapped frame already decoded with a bit error).
SMOOTH_SIGMA = 0.6  # crop pixels
MAX_BIT_ERRORS = 7
# reading: each face is read twice, plainly and with votes weighted by the JND (issue 24)
READINGS = 2
WEIGHT_JND = 3.0  # grey levels of JND at which a block's votes count fully
# the alignment search on reading (landmark error on re-detected faces, see module doc)
SCALES = (0.92, 0.96, 1.0, 1.04, 1.08)
ROTATIONS = (-6.0, -3.0, 0.0, 3.0, 6.0)
MARGIN = 4  # shifts -MARGIN..MARGIN crop pixels, in steps of COARSE_STEP
COARSE_STEP = 2
FINE_SCALE, FINE_ROTATION = 0.02, 1.5  # second pass around the best coarse alignment
FINE_SHIFT = 1


def _keyed() -> tuple[np.ndarray, np.ndarray]:
    seed = int.from_bytes(hashlib.sha256(b"slimswap face mark key v1").digest()[:8], "little")
    rng = np.random.default_rng(seed)
    n = GRID * GRID * len(COEFS)
    bit_index = rng.permutation(np.arange(n) % N_BITS).reshape(GRID, GRID, len(COEFS))
    dither = rng.uniform(0.0, 1.0, (GRID, GRID, len(COEFS))).astype(np.float32)
    return bit_index, dither


_BIT_INDEX, _DITHER = _keyed()
_DCT = cv2.dct(np.eye(BLOCK, dtype=np.float32), flags=cv2.DCT_ROWS).T  # row k = basis k
_ROWS = np.array([c[0] for c in COEFS])
_COLS = np.array([c[1] for c in COEFS])
_KERNELS = [np.outer(_DCT[r], _DCT[c]).astype(np.float32) for r, c in COEFS]
# coefficients grouped by the bit they carry (each bit has the same number), so summing the
# votes is a reshape; a BLAS matrix product here stalls when other processes load the CPU
_BY_BIT = np.argsort(_BIT_INDEX.reshape(-1), kind="stable")
_SIGNS = 1.0 - 2.0 * SIGNATURE.astype(np.float32)  # +1 for a 0 bit (soft vote > 0)
_OFFSET = (_DITHER + 0.5 * SIGNATURE[_BIT_INDEX]) * DELTA  # the lattice each coefficient uses
N_ALIGNMENTS = (
    len(SCALES) * len(ROTATIONS) * (2 * MARGIN // COARSE_STEP + 1) ** 2
    + 9 * 4 * (2 * FINE_SHIFT + 1) ** 2
)


def _binomial_tail(k: int, n: int = N_BITS) -> float:
    return sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n


FALSE_POSITIVE_BOUND = READINGS * N_ALIGNMENTS * _binomial_tail(MAX_BIT_ERRORS)


def face_affine(kps5: np.ndarray) -> np.ndarray:
    """2x3 affine taking frame pixels to the mark's 128x128 crop of the face at `kps5`."""
    return estimate_affine(np.asarray(kps5, np.float64), SIZE)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)


def _antialias(luma: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Blur a frame whose face is larger than the crop, so warping down does not alias."""
    scale = frame_px_per_crop_px(affine)
    if scale > 1.2:
        return cv2.GaussianBlur(luma, (0, 0), 0.45 * scale)
    return luma


def _warp(luma: np.ndarray, affine: np.ndarray, size: int) -> np.ndarray:
    return cv2.warpAffine(
        luma, affine, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )


def _gain(crop: np.ndarray) -> float:
    """Scale to REFERENCE_STD from the contrast of the crop's inner part (the face).

    Clamped to [10, MAX_STD]: a flat crop does not get a vanishing step, and a very
    high-contrast one does not get a visible one (it then loses contrast-change robustness).
    """
    q = crop.shape[0] // 8
    return REFERENCE_STD / float(np.clip(crop[q:-q, q:-q].std(), 10.0, MAX_STD))


def _coefficients(crop: np.ndarray) -> np.ndarray:
    blocks = crop.reshape(GRID, BLOCK, GRID, BLOCK).transpose(0, 2, 1, 3)
    return np.einsum("ri,yxij,rj->yxr", _DCT[_ROWS], blocks, _DCT[_COLS])


def _roi(affine: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """Frame box (x0, y0, x1, y1) covering the crop, clipped to the frame; None if outside."""
    inverse = invert_affine(affine)
    corners = np.array([[0, 0], [SIZE, 0], [0, SIZE], [SIZE, SIZE]], np.float64) - 0.5
    points = corners @ inverse[:, :2].T + inverse[:, 2]
    x0, y0 = np.floor(points.min(0)).astype(int) - 1
    x1, y1 = np.ceil(points.max(0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, shape[1]), min(y1, shape[0])
    return (x0, y0, x1, y1) if x1 - x0 >= 8 and y1 - y0 >= 8 else None


def embed_face_mark(
    rgb: np.ndarray, faces_kps5: list[np.ndarray], original: np.ndarray | None = None
) -> np.ndarray:
    """A copy of an RGB uint8 frame whose faces (5 keypoints each) carry the signature.

    About 3 ms per face on one CPU core; the change stays inside each face's crop box.
    `original`: the frame before any mark (`rgb` already carries the frame mark): the JND is
    then that frame's, and it bounds the two marks' change together, the face mark taking
    the share the frame mark left (or overwriting it: it has far fewer votes per bit).
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(
            f"embed_face_mark expects RGB uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}"
        )
    if original is not None and np.shape(original) != rgb.shape:
        raise ValueError(f"original is {np.shape(original)}, the frame {rgb.shape}")
    changes = []
    work = _luma(rgb)
    reference = work.copy() if original is None else _luma(original)
    for kps in faces_kps5:
        affine = face_affine(kps)
        box = _roi(affine, rgb.shape)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        to_roi = affine @ np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64)
        from_roi = invert_affine(to_roi)
        luma = work[y0:y1, x0:x1]
        allowed = jnd.jnd_map(reference[y0:y1, x0:x1])
        prior = luma - reference[y0:y1, x0:x1]  # the frame mark's and earlier faces' change
        low, high = -allowed - prior, allowed - prior
        total = np.zeros_like(luma)
        for _ in range(ITERATIONS):
            crop = _warp(_antialias(luma + total, to_roi), to_roi, SIZE)
            gain = _gain(crop)
            coef = _coefficients(crop) * gain
            change = np.round((coef - _OFFSET) / DELTA) * DELTA + _OFFSET - coef
            change = (change / gain).astype(np.float32)
            crop_change = np.einsum("ri,yxr,rj->yixj", _DCT[_ROWS], change, _DCT[_COLS])
            crop_change = cv2.GaussianBlur(
                np.ascontiguousarray(crop_change.reshape(SIZE, SIZE), np.float32),
                (0, 0),
                SMOOTH_SIGMA,
                borderType=cv2.BORDER_REPLICATE,
            )
            total += cv2.warpAffine(
                crop_change,
                from_roi,
                (x1 - x0, y1 - y0),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
            )
            # held to the JND pixel by pixel; the next iteration re-fits what that cost
            total = np.clip(total, low, high)
        work[y0:y1, x0:x1] += total  # a later face in an overlapping box sees this one
        changes.append((box, total))
    if not changes:
        return rgb.copy()
    budget = rgb.shape[0] * rgb.shape[1] * 255.0**2 / 10 ** (MIN_PSNR / 10)
    energy = sum(float(np.square(total).sum()) for _, total in changes)
    scale = min(1.0, math.sqrt(budget / energy)) if energy > 0 else 1.0
    out = rgb.copy()
    for (x0, y0, x1, y1), total in changes:
        step = jnd.dithered_round(scale * total, (x0, y0))
        marked = out[y0:y1, x0:x1].astype(np.float32) + step[..., None]
        out[y0:y1, x0:x1] = np.clip(marked, 0, 255).astype(np.uint8)
    return out


@dataclass(frozen=True)
class FaceMarkReading:
    bit_errors: int  # at the best alignment, Hamming distance to the signature (0..64)
    score: float  # agreement of the soft bits with the signature at that alignment (-1..1)

    @property
    def detected(self) -> bool:
        return self.bit_errors <= MAX_BIT_ERRORS


def _shift_search(
    luma: np.ndarray, affine: np.ndarray, shifts: range, weight: np.ndarray | None = None
) -> tuple[float, np.ndarray, tuple[int, int]]:
    """Best integer shift of one alignment: (score, soft bits, (dx, dy)).

    One filter per coefficient over the crop plus a margin gives every block's coefficient
    at every shift at once; the shifts are then gathered and scored as one matrix product.
    """
    m = MARGIN
    crop = _warp(luma, np.array([[1, 0, m], [0, 1, m]], np.float64) @ _h(affine), SIZE + 2 * m)
    gain = _gain(crop[m:-m, m:-m])
    responses = np.stack(
        [
            cv2.filter2D(crop, -1, k, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
            for k in _KERNELS
        ],
        -1,
    )
    steps = np.array(list(shifts))
    grid = np.arange(GRID) * BLOCK + m
    ys = (steps[:, None] + grid[None, :])[:, None, :, None]
    xs = (steps[:, None] + grid[None, :])[None, :, None, :]
    coef = responses[ys, xs] * np.float32(gain / DELTA)  # (dy, dx, GRID, GRID, coefs)
    soft = np.cos(np.float32(2 * np.pi) * (coef - _DITHER))
    if weight is not None:
        soft = soft * weight[..., None]
    bits = (
        soft.reshape(len(steps) ** 2, -1)[:, _BY_BIT].reshape(len(steps) ** 2, N_BITS, -1).mean(-1)
    )
    if weight is not None:
        w = np.broadcast_to(weight[..., None], (GRID, GRID, len(COEFS))).reshape(-1)[_BY_BIT]
        bits = bits / np.maximum(w.reshape(N_BITS, -1).mean(-1), 1e-6)
    scores = (bits * _SIGNS).mean(-1)
    best = int(np.argmax(scores))
    dy, dx = divmod(best, len(steps))
    return float(scores[best]), bits[best], (int(steps[dx]), int(steps[dy]))


def _h(affine: np.ndarray) -> np.ndarray:
    return np.vstack([affine, [0.0, 0.0, 1.0]])


def _about_centre(scale: float, degrees: float) -> np.ndarray:
    c = SIZE / 2 - 0.5
    return _h(cv2.getRotationMatrix2D((c, c), degrees, scale))


def _read(
    luma: np.ndarray, base: np.ndarray, weight: np.ndarray | None
) -> tuple[float, np.ndarray]:
    """(score, soft bits) at the best alignment of the search around `base`."""
    best = (-np.inf, np.zeros(N_BITS), (1.0, 0.0, 0.0, 0.0))
    for scale in SCALES:
        for degrees in ROTATIONS:
            affine = (_about_centre(scale, degrees) @ base)[:2]
            score, bits, (dx, dy) = _shift_search(
                luma, affine, range(-MARGIN, MARGIN + 1, COARSE_STEP), weight
            )
            if score > best[0]:
                best = (score, bits, (scale, degrees, dx, dy))
    _, _, (s0, r0, x0, y0) = best
    for scale in (s0 - FINE_SCALE, s0, s0 + FINE_SCALE):
        for degrees in (r0 - FINE_ROTATION, r0, r0 + FINE_ROTATION):
            for sub_x, sub_y in ((0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5)):
                shift = np.array([[1, 0, -x0 - sub_x], [0, 1, -y0 - sub_y], [0, 0, 1]])
                affine = (shift @ _about_centre(scale, degrees) @ base)[:2]
                score, bits, _ = _shift_search(
                    luma, affine, range(-FINE_SHIFT, FINE_SHIFT + 1), weight
                )
                if score > best[0]:
                    best = (score, bits, (scale, degrees, x0 + sub_x, y0 + sub_y))
    return best[0], best[1]


def read_face_mark(rgb: np.ndarray, kps5: np.ndarray) -> FaceMarkReading:
    """Read the mark of the face at `kps5` (found by any detector on this very image)."""
    base = _h(face_affine(kps5))
    raw = _luma(rgb)
    luma = _antialias(raw, base[:2])
    readings = [_read(luma, base, None), _read(luma, base, _vote_weights(raw, base))]
    errors = [
        int(np.count_nonzero((bits < 0).astype(np.uint8) != SIGNATURE)) for _, bits in readings
    ]
    i = int(np.argmin(errors))  # ties: the plain reading
    return FaceMarkReading(bit_errors=errors[i], score=float(readings[i][0]))


def _vote_weights(raw: np.ndarray, base: np.ndarray) -> np.ndarray:
    """(GRID, GRID) weight of each crop block's votes: its JND, from the image being read,
    over `WEIGHT_JND` (at most 1). Blocks of smooth skin carry a smaller move than the
    face's texture (the JND holds them back), so their votes count less."""
    box = _roi(base[:2], raw.shape)
    if box is None:
        return np.ones((GRID, GRID), np.float32)
    x0, y0, x1, y1 = box
    to_roi = base[:2] @ np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64)
    crop_jnd = _warp(jnd.jnd_map(raw[y0:y1, x0:x1]), to_roi, SIZE)
    block_jnd = crop_jnd.reshape(GRID, BLOCK, GRID, BLOCK).mean(axis=(1, 3))
    return np.minimum(1.0, block_jnd / WEIGHT_JND).astype(np.float32)
