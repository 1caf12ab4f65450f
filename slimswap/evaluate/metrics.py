"""Swap-quality metrics as small pure functions over numpy arrays."""

from __future__ import annotations

import numpy as np

OUTER_EYE_CORNERS = (36, 45)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images, in dB."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=-1, data_range=255))


def landmark_nme(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean 68-landmark error normalised by the reference's inter-ocular (outer corner) distance."""
    iod = np.linalg.norm(ref[OUTER_EYE_CORNERS[0]] - ref[OUTER_EYE_CORNERS[1]])
    return float(np.linalg.norm(pred - ref, axis=1).mean() / max(iod, 1e-6))


def top1_retrieval(queries: np.ndarray, true_labels: np.ndarray, gallery: np.ndarray, gallery_labels: np.ndarray) -> float:
    """Share of queries whose nearest gallery embedding (Euclidean) has the true label."""
    d = np.linalg.norm(queries[:, None, :] - gallery[None, :, :], axis=2)
    return float(np.mean(gallery_labels[d.argmin(1)] == true_labels))


def roc_auc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve (probability a positive outscores a negative), ties count half."""
    pos, neg = scores[positives], scores[~positives]
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)
