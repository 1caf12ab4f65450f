"""Swap-quality metrics as small pure functions over numpy arrays.

Images are RGB uint8 of the same shape; masks are boolean (H, W) from `evaluate.regions`.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

OUTER_EYE_CORNERS = (36, 45)
PSNR_CAP = 100.0  # dB for identical pixels: JSON has no infinity


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images, in dB."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=-1, data_range=255))


def masked_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """PSNR over the masked pixels only (all channels), capped at PSNR_CAP dB."""
    diff = a[mask].astype(np.float64) - b[mask].astype(np.float64)
    mse = float(np.mean(diff**2)) if diff.size else float("nan")
    if not np.isfinite(mse):
        return float("nan")
    return PSNR_CAP if mse == 0 else float(min(PSNR_CAP, 10 * np.log10(255.0**2 / mse)))


def masked_ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean of scikit-image's SSIM map over the masked pixels (7x7 windows, all channels).

    The map is computed on the whole array (the caller passes the face's rectangle), so
    windows at the mask's edge still see real neighbours rather than padding.
    """
    from skimage.metrics import structural_similarity

    if not mask.any() or min(a.shape[:2]) < 7:
        return float("nan")
    _, smap = structural_similarity(a, b, channel_axis=-1, data_range=255, full=True)
    return float(smap[mask].mean())


def sharpness(rgb: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute Laplacian (3x3) of the luma over the masked pixels.

    The Laplacian answers to the finest scale the image holds (lashes, pores, the edges of
    brows and lips), which is exactly what an upsampled 128 px generator output lacks when
    pasted into a large photo. Measured at the photo's own resolution.
    """
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lap = cv2.Laplacian(grey, cv2.CV_32F, ksize=1)
    return float(np.abs(lap[mask]).mean()) if mask.any() else float("nan")


def sharpness_ratio(output: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """Output's sharpness over the target photo's, on the same pixels: 1 = as sharp as the photo.

    A ratio, per photo, so the camera's own noise and JPEG level mostly cancel. Below 1: the
    swap is softer than the photo around it. Well above 1 is not better: it is texture the
    photo did not have (a generator's grid pattern, noise).
    """
    ref = sharpness(target, mask)
    return sharpness(output, mask) / ref if ref > 1e-6 else float("nan")


def ciede2000(
    a: np.ndarray, b: np.ndarray, mask: np.ndarray, max_pixels: int | None = 40_000
) -> tuple[float, float]:
    """(mean, 95th percentile) CIEDE2000 colour difference over the masked pixels.

    CIEDE2000 is close to perceptually uniform: about 1 is a just-visible difference, above
    5-10 a clearly different colour, so a purple or yellow cast shows as a high mean, and a
    cast on part of the skin as a high 95th percentile. Faces in large photos cover hundreds
    of thousands of pixels; an even stride keeps `max_pixels` of them, far more than the two
    statistics need to settle.
    """
    from skimage.color import deltaE_ciede2000, rgb2lab

    pa, pb = a[mask], b[mask]
    if not len(pa):
        return float("nan"), float("nan")
    if max_pixels and len(pa) > max_pixels:
        step = -(-len(pa) // max_pixels)
        pa, pb = pa[::step], pb[::step]
    lab_a = rgb2lab(pa[None].astype(np.float64) / 255.0)
    lab_b = rgb2lab(pb[None].astype(np.float64) / 255.0)
    de = deltaE_ciede2000(lab_a, lab_b)[0]
    return float(de.mean()), float(np.percentile(de, 95))


def mean_of_lowest(values: Sequence[float], share: float = 0.1) -> float:
    """Mean of the lowest `share` of the finite values (at least one): the worst cases."""
    v = np.sort(np.asarray([x for x in values if np.isfinite(x)], np.float64))
    if not len(v):
        return float("nan")
    return float(v[: max(1, round(share * len(v)))].mean())


def landmark_nme(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean 68-landmark error normalised by the reference's inter-ocular (outer corner) distance."""
    iod = np.linalg.norm(ref[OUTER_EYE_CORNERS[0]] - ref[OUTER_EYE_CORNERS[1]])
    return float(np.linalg.norm(pred - ref, axis=1).mean() / max(iod, 1e-6))


def top1_retrieval(
    queries: np.ndarray, true_labels: np.ndarray, gallery: np.ndarray, gallery_labels: np.ndarray
) -> float:
    """Share of queries whose nearest gallery embedding (Euclidean) has the true label."""
    d = np.linalg.norm(queries[:, None, :] - gallery[None, :, :], axis=2)
    return float(np.mean(gallery_labels[d.argmin(1)] == true_labels))


def nearest_identity(
    query: np.ndarray,
    embeddings: np.ndarray,
    labels: np.ndarray,
    exclude: Sequence[int] = (),
    metric: str = "cosine",
) -> int:
    """The identity whose mean embedding is nearest to `query`, leaving out some photos.

    embeddings (N, D) holds one embedding per photo of the held-out identities, labels (N,)
    their identities. The photos in `exclude` (the swap's own source and target) are left
    out of the gallery, so a swap is never recognised through the very photo it was made
    from. "cosine": means are L2-normalised and compared by dot product (the recognizer);
    "euclidean": plain distance between raw means (dlib's descriptors). -1 if none is left.
    """
    keep = np.ones(len(labels), bool)
    keep[list(exclude)] = False
    ids = np.unique(labels[keep])
    if not len(ids):
        return -1
    emb = embeddings[keep].astype(np.float64)
    lab = labels[keep]
    means = np.stack([emb[lab == i].mean(0) for i in ids])
    q = np.asarray(query, np.float64)
    if metric == "cosine":
        means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        return int(ids[np.argmax(means @ (q / max(np.linalg.norm(q), 1e-12)))])
    return int(ids[np.argmin(np.linalg.norm(means - q, axis=1))])


def roc_auc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve (probability a positive outscores a negative), ties count half."""
    pos, neg = scores[positives], scores[~positives]
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)
