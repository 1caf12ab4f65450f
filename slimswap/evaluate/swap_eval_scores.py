"""`slimswap eval swapper`'s numbers: the per-pair scores of a swap pasted into a photo, and
their aggregate per swapper and set (`SetResult`). Part of slimswap.evaluate.swap_eval, which
imports every name here."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from slimswap.evaluate import metrics, regions, report
from slimswap.evaluate.recognition import EvalRecognizer
from slimswap.face.analyser import Face, FaceAnalyser, embedding_distance

CELL_PX = 288  # grid cell side, cut around the face from the full-resolution result


def image_scores(
    output: np.ndarray, target: np.ndarray, landmarks: np.ndarray, reconstruction: bool
) -> dict:
    """Sharpness, skin colour and (for reconstruction) PSNR/SSIM of `output` against `target`.

    Both are full frames of the same size; `landmarks` are the target face's 68 points. Work
    is done on the face's rectangle only.
    """
    x0, y0, x1, y1 = regions.roi_box(landmarks, target.shape)
    a, b = output[y0:y1, x0:x1], target[y0:y1, x0:x1]
    lm = np.asarray(landmarks, np.float32) - np.array([x0, y0], np.float32)
    de_mean, de_p95 = metrics.ciede2000(a, b, regions.skin_mask(b.shape, lm))
    scores = {
        "sharpness_ratio": metrics.sharpness_ratio(a, b, regions.inner_face_mask(b.shape, lm)),
        "de2000_mean": de_mean,
        "de2000_p95": de_p95,
    }
    if reconstruction:
        face = regions.face_mask(b.shape, lm)
        scores["psnr"] = metrics.masked_psnr(a, b, face)
        scores["ssim"] = metrics.masked_ssim(a, b, face)
    return scores


@dataclass
class Gallery:
    """Per-photo embeddings of one set, for retrieval among its identities."""

    labels: np.ndarray
    recognizer: np.ndarray  # (N, D) unit vectors
    dlib: np.ndarray  # (N, 128)


@dataclass
class Side:
    """One photo of a pair: its index in the set, its face, its recognizer embedding."""

    index: int
    path: Path
    face: Face  # with dlib's descriptor
    rec: np.ndarray


def identity_scores(
    output: np.ndarray,
    source: Side,
    target: Side,
    gallery: Gallery,
    judge: EvalRecognizer,
    analyser: FaceAnalyser,
    swapped: Face | None,
) -> dict:
    """Who the pasted face is, by the recognizer (every pair) and dlib (when dlib finds it).

    The recognizer reads the swap aligned on the target's keypoints (the place the pipeline
    pasted it), so every pair is judged, even when dlib no longer detects the face.
    """
    q = judge.embed_faces([output], [target.face.kps])[0]
    own = (source.index, target.index)
    src_label, tgt_label = int(gallery.labels[source.index]), int(gallery.labels[target.index])
    pred = metrics.nearest_identity(q, gallery.recognizer, gallery.labels, exclude=own)
    scores = {
        "rec_cos_to_source": float(q @ source.rec),
        "rec_cos_to_target": float(q @ target.rec),
        "rec_top1_as_source": float(pred == src_label),
        "rec_top1_as_target": float(pred == tgt_label),
    }
    if swapped is not None:
        emb = analyser.embed(output, swapped).embedding
        dpred = metrics.nearest_identity(emb, gallery.dlib, gallery.labels, own, "euclidean")
        scores.update(
            id_dist_to_source=embedding_distance(emb, source.face.embedding),
            id_dist_to_target=embedding_distance(emb, target.face.embedding),
            dlib_top1_as_source=float(dpred == src_label),
        )
    return scores


@dataclass
class SetResult:
    """One swapper on one set. Field names up to `self_ssim` are those of earlier reports."""

    model: str
    mode: str
    test_set: str
    kind: str  # photos | video
    pairs: int = 0  # different-person pairs scored
    identities: int = 0
    detected: int = 0  # of those, swaps dlib still finds at the face's place
    id_dist_to_source: float = math.nan
    id_dist_to_target: float = math.nan
    share_below_0_6: float = math.nan
    retrieval_top1: float = math.nan  # dlib, as source
    landmark_nme: float = math.nan
    self_psnr: float = math.nan  # crop level, swapper's resolution
    self_ssim: float = math.nan
    sharpness_ratio: float = math.nan
    sharpness_ratio_worst10: float = math.nan
    rec_cos_to_source: float = math.nan
    rec_cos_to_target: float = math.nan
    rec_top1_as_source: float = math.nan
    rec_top1_as_target: float = math.nan
    de2000_mean: float = math.nan
    de2000_p95: float = math.nan
    recon_pairs: int = 0
    recon_psnr: float = math.nan
    recon_ssim: float = math.nan
    recon_de2000_mean: float = math.nan
    recon_de2000_p95: float = math.nan
    recon_sharpness_ratio: float = math.nan
    # expression (evaluate/expression.py): different people, then same person (recon_)
    mouth_open_err: float = math.nan
    mouth_missed_share: float = math.nan
    open_mouth_pairs: int = 0
    eye_open_err: float = math.nan
    eye_missed_share: float = math.nan
    mouth_nme: float = math.nan
    eye_nme: float = math.nan
    recon_mouth_open_err: float = math.nan
    recon_mouth_missed_share: float = math.nan
    recon_open_mouth_pairs: int = 0
    recon_eye_open_err: float = math.nan
    recon_eye_missed_share: float = math.nan
    recon_mouth_nme: float = math.nan
    recon_eye_nme: float = math.nan
    self_swaps: int = 0
    crop_px: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict:
        """The fields that apply: a video set has no identity gallery (a clip is one person)."""
        d = asdict(self)
        if self.kind == "video":
            d = {k: v for k, v in d.items() if k not in CROSS_ONLY}
        if not self.pairs:  # one clip only (--quick): no different-person pairs at all
            d = {k: v for k, v in d.items() if k not in FROM_CROSS_PAIRS}
        return report.jsonable(d)


CROSS_ONLY = {
    "identities", "detected", "id_dist_to_source", "id_dist_to_target",
    "share_below_0_6", "retrieval_top1", "rec_cos_to_source", "rec_cos_to_target",
    "rec_top1_as_source", "rec_top1_as_target",
}  # fmt: skip
FROM_CROSS_PAIRS = CROSS_ONLY | {
    "pairs", "landmark_nme", "sharpness_ratio", "sharpness_ratio_worst10", "de2000_mean",
    "de2000_p95", "mouth_open_err", "mouth_missed_share", "open_mouth_pairs", "eye_open_err",
    "eye_missed_share", "mouth_nme", "eye_nme",
}  # fmt: skip


@dataclass
class GridRow:
    key: str  # the pair's key in the per-pair rows
    cells: list[np.ndarray]  # source, target, then one per model (CELL_PX squares)


@dataclass
class EvalRun:
    results: list[SetResult]
    rows: list[dict]  # every per-pair score
    grid: list[GridRow] = field(default_factory=list)
    verification: dict = field(default_factory=dict)  # set -> recognizer verification
    sets: dict = field(default_factory=dict)  # set -> photos, identities, shrunk, no_face
    seconds: float = 0.0
    resumed_rows: int = 0  # per-pair scores taken from the cache of an earlier run
