"""`slimswap eval swapper`: swap quality on identities no training step has seen.

Protocol (DESIGN.md): for N (source, target) pairs of different held-out identities, swap the
target photo's face with the full pipeline (align, swap, mask, colour, paste-back), then run
dlib's own C++ analysis on the result: ID distance to the source and to the target, top-1
retrieval among all held-out identities, and 68-landmark NME against the target photo's own
landmarks (pose and expression must follow the target). Self-swap PSNR/SSIM are measured on
the aligned 128 px crops (the swapper's own resolution) with the target's own identity.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from slimswap.errors import UserError
from slimswap.evaluate import metrics
from slimswap.face.analyser import FaceAnalyser, embedding_distance
from slimswap.pipeline import StageTimer, SwapOptions, swap_faces_in_frames
from slimswap.swap.base import SourceIdentity, Swapper

MAX_SIDE = 800  # large deepface photos are shrunk before analysis (seconds otherwise)


@dataclass
class EvalResult:
    model: str
    test_set: str
    pairs: int = 0
    identities: int = 0  # held-out identities used (after removing any the model saw)
    detected: int = 0  # swaps in which dlib still finds a face
    id_dist_to_source: float = float("nan")
    id_dist_to_target: float = float("nan")
    share_below_0_6: float = float("nan")
    retrieval_top1: float = float("nan")
    landmark_nme: float = float("nan")
    self_psnr: float = float("nan")
    self_ssim: float = float("nan")
    seconds: float = 0.0
    examples: list = field(default_factory=list, repr=False)


def _load_rgb(path: Path) -> np.ndarray:
    import cv2

    from slimswap.media import read_image

    img = read_image(path)
    if max(img.shape[:2]) > MAX_SIDE:
        s = MAX_SIDE / max(img.shape[:2])
        img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    return img


def make_pairs(labels: np.ndarray, n: int, seed: int = 0) -> list[tuple[int, int]]:
    """n deterministic (source, target) index pairs with different identities."""
    rng = np.random.default_rng(seed)
    pairs: list[tuple[int, int]] = []
    while len(pairs) < n:
        s, t = rng.integers(0, len(labels), 2)
        if labels[s] != labels[t]:
            pairs.append((int(s), int(t)))
    return pairs


def unseen_mask(shard, seen_shard_path: Path | None, threshold: float = 0.36) -> np.ndarray:
    """Rows of `shard` whose identity a model trained on `seen_shard_path` never saw.

    An identity counts as seen when its name is in the training shard or its mean dlib
    descriptor lies within `threshold` of a training identity's (the same person filed under
    another name, as the data build's leak guard defines it).
    """
    keep = np.ones(len(shard), bool)
    if seen_shard_path is None:
        return keep
    from slimswap.train.data import load_shard

    seen = load_shard(seen_shard_path)
    seen_names = set(str(n) for n in seen.identities)
    seen_c = np.stack([seen.embeddings[seen.labels == i].astype(np.float32).mean(0) for i in range(len(seen.identities))])
    for i, name in enumerate(shard.identities):
        rows = shard.labels == i
        if not rows.any():
            continue
        c = shard.embeddings[rows].astype(np.float32).mean(0)
        if str(name) in seen_names or np.linalg.norm(seen_c - c, axis=1).min() < threshold:
            keep[rows] = False
    return keep


def evaluate_swapper(
    swapper: Swapper,
    shard_path: Path,
    data_root: Path,
    n_pairs: int = 500,
    n_self: int = 200,
    seed: int = 0,
    analyser: FaceAnalyser | None = None,
    progress: bool = True,
    exclude_seen: Path | None = None,
) -> EvalResult:
    from rich.progress import track

    from slimswap.train.data import load_shard

    start = time.time()
    shard = load_shard(shard_path)
    analyser = analyser or FaceAnalyser(detector="dlib")  # the judge: dlib, like the shards
    result = EvalResult(model=swapper.name, test_set=Path(shard_path).stem)
    options = SwapOptions(progress=False)
    timer = StageTimer()
    # gallery for retrieval: mean dlib descriptor per identity of the test set
    keep = unseen_mask(shard, exclude_seen)
    result.identities = int(len(np.unique(shard.labels[keep])))
    labels = np.where(keep, shard.labels, -1)
    ids = np.unique(labels[keep])
    gallery = np.stack([shard.embeddings[labels == i].astype(np.float32).mean(0) for i in ids])

    to_src, to_tgt, nme, queries, query_labels = [], [], [], [], []
    rows = np.flatnonzero(keep)
    pairs = [(int(rows[s]), int(rows[t])) for s, t in make_pairs(labels[keep], n_pairs, seed)]
    cache: dict[int, tuple] = {}
    for s, t in track(pairs, description=f"eval {swapper.name} on {result.test_set}", disable=not progress):
        if t not in cache:
            frame = _load_rgb(data_root / str(shard.sources[t]))
            faces = analyser.detect(frame)
            cache[t] = (frame, max(faces, key=lambda f: f.area) if faces else None)
        frame, face = cache[t]
        if face is None:
            continue
        src_crop = shard.image(s)
        identity = SourceIdentity(
            embedding=shard.embeddings[s].astype(np.float32),
            crop=_resize(src_crop, swapper.resolution),
            landmarks=shard.landmarks[s].astype(np.float32) * swapper.resolution / shard.size,
        )
        (out,) = swap_faces_in_frames([frame], [[face]], swapper, identity, options, timer)
        result.pairs += 1
        best = match_face(analyser.detect(out), face.bbox)
        if best is None:
            continue
        best = analyser.embed(out, best)
        result.detected += 1
        to_src.append(embedding_distance(best.embedding, shard.embeddings[s]))
        to_tgt.append(embedding_distance(best.embedding, shard.embeddings[t]))
        nme.append(metrics.landmark_nme(best.landmarks, face.landmarks))
        queries.append(best.embedding)
        query_labels.append(labels[s])
        if len(result.examples) < 8:
            result.examples.append((src_crop, _face_box(frame, face), _face_box(out, face)))
    if not to_src:
        raise UserError(f"no swapped face was detected in any of {len(pairs)} pairs")
    result.id_dist_to_source = float(np.mean(to_src))
    result.id_dist_to_target = float(np.mean(to_tgt))
    result.share_below_0_6 = float(np.mean(np.array(to_src) < 0.6))
    result.retrieval_top1 = metrics.top1_retrieval(np.stack(queries), np.array(query_labels), gallery, ids)
    result.landmark_nme = float(np.mean(nme))

    # self-swap on aligned crops at the swapper's resolution
    rng = np.random.default_rng(seed + 1)
    idx = rng.choice(rows, size=min(n_self, len(rows)), replace=False)
    crops = np.stack([_resize(shard.image(int(i)), swapper.resolution) for i in idx])
    lms = np.stack([shard.landmarks[int(i)].astype(np.float32) * swapper.resolution / shard.size for i in idx])
    ps, ss = [], []
    for k, i in enumerate(idx):
        ident = SourceIdentity(embedding=shard.embeddings[int(i)].astype(np.float32), crop=crops[k], landmarks=lms[k])
        (own,) = swapper.swap(crops[k : k + 1], ident, target_landmarks=lms[k : k + 1])
        ps.append(metrics.psnr(own, crops[k]))
        ss.append(metrics.ssim(own, crops[k]))
    finite = [p for p in ps if np.isfinite(p)]
    result.self_psnr = float(np.mean(finite)) if finite else float("inf")
    result.self_ssim = float(np.mean(ss))
    result.seconds = time.time() - start
    return result


def match_face(found: list, box: np.ndarray, min_iou: float = 0.3):
    """The detection overlapping `box` most, if it overlaps enough (the swapped face)."""
    from slimswap.face.select import iou

    if not found:
        return None
    best = max(found, key=lambda f: iou(f.bbox, box))
    return best if iou(best.bbox, box) >= min_iou else None


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if img.shape[0] == size:
        return img
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR)


def _face_box(frame: np.ndarray, face, size: int = 128) -> np.ndarray:
    """A square view around the face for the example grid."""
    from slimswap.face.align import align

    crop, _ = align(frame, face.kps, size)
    return crop


ROW_KEYS = [
    ("id_dist_to_source", "ID dist → source ↓", "{:.3f}"),
    ("id_dist_to_target", "ID dist → target", "{:.3f}"),
    ("share_below_0_6", "share < 0.6", "{:.1%}"),
    ("retrieval_top1", "retrieval top-1 ↑", "{:.1%}"),
    ("landmark_nme", "landmark NME ↓", "{:.4f}"),
    ("self_psnr", "self-swap PSNR dB ↑", "{:.2f}"),
    ("self_ssim", "self-swap SSIM ↑", "{:.3f}"),
    ("detected", "swaps detected", "{}"),
    ("pairs", "pairs", "{}"),
    ("identities", "identities", "{}"),
]


def markdown_table(results: list[EvalResult]) -> str:
    head = "| model | test set | " + " | ".join(k[1] for k in ROW_KEYS) + " |"
    sep = "|" + "---|" * (len(ROW_KEYS) + 2)
    rows = [
        f"| {r.model} | {r.test_set} | " + " | ".join(fmt.format(getattr(r, key)) for key, _, fmt in ROW_KEYS) + " |"
        for r in results
    ]
    return "\n".join([head, sep, *rows])


def save_report(results: list[EvalResult], out_dir: Path, command: str) -> Path:
    """Markdown table + JSON + a PNG grid (source | target | swap per model) in out_dir."""
    import cv2

    out_dir.mkdir(parents=True, exist_ok=True)
    md = f"# Swap evaluation\n\nCommand: `{command}`\n\n{markdown_table(results)}\n"
    (out_dir / "eval.md").write_text(md)
    (out_dir / "eval.json").write_text(
        json.dumps([{k: v for k, v in asdict(r).items() if k != "examples"} for r in results], indent=1)
    )
    rows = []
    for r in results:
        for src, tgt, swp in r.examples[:4]:
            rows.append(np.hstack([_resize(src, 128), tgt, swp]))
    if rows:
        grid = np.vstack(rows)
        cv2.imwrite(str(out_dir / "eval_grid.png"), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    return out_dir / "eval.md"
