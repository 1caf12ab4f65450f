"""The analysis step of the data build: each image read strictly, its labelled face found,
landmarked and embedded by dlib in a worker process, and the results cached per chunk of
inputs (an interrupted build resumes from the cache)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from slimswap.errors import UserError
from slimswap.train.build_config import BuildConfig, _Item
from slimswap.train.shards import write_npz

log = logging.getLogger(__name__)

# Bump when detection, landmarks or embedding change: it is part of every cache key.
ANALYSIS_VERSION = 1


class _BadImage(Exception):
    pass


def read_rgb_strict(path: Path) -> np.ndarray:
    """Decode an image file to RGB uint8, refusing truncated files.

    Pillow raises on a truncated JPEG where OpenCV silently returns a grey-padded picture;
    EXIF orientation is applied as cv2.imread would.
    """
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        msg = str(exc).replace(str(path), "<file>")
        raise _BadImage(f"unreadable: {type(exc).__name__}: {msg}") from exc


def pick_face(faces: Sequence, shape: tuple[int, ...]):
    """The labelled face: the largest, discounted by up to half for sitting at the border.

    LFW photos sometimes hold several people; the labelled one is centred and usually largest.
    """
    h, w = shape[:2]
    centre = np.array([w / 2, h / 2])
    half_diag = float(np.hypot(w, h) / 2)

    def weight(face) -> float:
        c = (face.bbox[:2] + face.bbox[2:]) / 2
        off = min(1.0, float(np.linalg.norm(c - centre)) / half_diag)
        return face.area * (1.0 - 0.5 * off)

    return max(faces, key=weight)


_worker: dict = {}


def _init_worker(detect_max_side: int, retry_max_side: int) -> None:
    cv2.setNumThreads(1)  # the pool already uses the cores
    _worker.update(detect_max_side=detect_max_side, retry_max_side=retry_max_side, analyser=None)


def _analyser():
    if _worker.get("analyser") is None:
        from slimswap.face.analyser import FaceAnalyser  # dlib: only where faces are analysed

        _worker["analyser"] = FaceAnalyser(detector="dlib")  # the shards carry dlib landmarks
    return _worker["analyser"]


def _detect(frame: np.ndarray) -> list:
    fa = _analyser()
    h, w = frame.shape[:2]
    scale = min(1.0, _worker["detect_max_side"] / max(h, w))
    small = frame
    if scale < 1.0:
        size = (round(w * scale), round(h * scale))
        small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    boxes = fa.detect_boxes(small)
    if not boxes and max(h, w) <= _worker["retry_max_side"]:
        boxes = fa.detect_boxes(small, upsample=1)
    return [fa.face_from_box(frame, box / scale, score) for box, score in boxes]


def _analyse(path: str) -> dict:
    """Detect, pick, landmark and embed the face of one image; failures become a reason."""
    try:
        frame = read_rgb_strict(Path(path))
    except _BadImage as exc:
        return {"reason": str(exc)}
    try:
        faces = _detect(frame)
        if not faces:
            return {"reason": "no face"}
        face = _analyser().embed(frame, pick_face(faces, frame.shape))
    except Exception as exc:  # one odd image must not end a long build; it is listed instead
        log.exception("analysis failed on %s", path)
        return {"reason": f"analysis error: {type(exc).__name__}: {exc}"}
    return {
        "reason": "",
        "bbox": face.bbox,
        "landmarks": face.landmarks,
        "embedding": face.embedding,
        "score": face.score,
        "n_faces": len(faces),
        "image_size": (frame.shape[1], frame.shape[0]),
    }


def _pack_chunk(items: Sequence[_Item], results: Sequence[dict]) -> dict[str, np.ndarray]:
    n = len(items)
    out = {
        "sources": np.array([it.source for it in items]),
        "reasons": np.array([r["reason"] for r in results]),
        "bbox": np.zeros((n, 4), np.float32),
        "landmarks": np.zeros((n, 68, 2), np.float32),
        "embeddings": np.zeros((n, 128), np.float32),
        "scores": np.zeros(n, np.float32),
        "n_faces": np.zeros(n, np.int32),
        "image_size": np.zeros((n, 2), np.int32),
    }
    for i, r in enumerate(results):
        if not r["reason"]:
            out["bbox"][i] = r["bbox"]
            out["landmarks"][i] = r["landmarks"]
            out["embeddings"][i] = r["embedding"]
            out["scores"][i] = r["score"]
            out["n_faces"][i] = r["n_faces"]
            out["image_size"][i] = r["image_size"]
    return out


def _chunk_key(items: Sequence[_Item], cfg: BuildConfig) -> str:
    stats = [(it.source, it.path.stat().st_size, it.path.stat().st_mtime_ns) for it in items]
    blob = json.dumps([ANALYSIS_VERSION, cfg.detect_max_side, cfg.upsample_retry_max_side, stats])
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _imap(pool, fn, args: Iterable, chunksize: int = 4) -> Iterator:
    return pool.map(fn, args, chunksize=chunksize) if pool is not None else map(fn, args)


def _analyse_all(
    items: list[_Item], cache_dir: Path, cfg: BuildConfig, pool, bar
) -> tuple[dict, int]:
    """Analysis table aligned with items; chunks already in the cache are not recomputed."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    chunks = [items[i : i + cfg.chunk_images] for i in range(0, len(items), cfg.chunk_images)]
    paths = [cache_dir / f"analysis_{_chunk_key(c, cfg)}.npz" for c in chunks]
    pending = [i for i, p in enumerate(paths) if not p.is_file()]
    todo = [it for i in pending for it in chunks[i]]
    task = bar.add_task("analysing faces", total=len(items), completed=len(items) - len(todo))
    results = _imap(pool, _analyse, [str(it.path) for it in todo])
    start = time.perf_counter()
    done = 0
    for k, ci in enumerate(pending):
        chunk_results = []
        for _ in chunks[ci]:
            chunk_results.append(next(results))
            bar.advance(task)
        write_npz(paths[ci], _pack_chunk(chunks[ci], chunk_results))
        done += len(chunks[ci])
        rate = done / max(time.perf_counter() - start, 1e-9)
        log.info(
            "analysed chunk %d/%d (%d/%d new images, %.1f img/s, about %.0f s left)",
            k + 1,
            len(pending),
            done,
            len(todo),
            rate,
            (len(todo) - done) / rate,
        )
    table: dict[str, list[np.ndarray]] = defaultdict(list)
    for p in paths:
        with np.load(p, allow_pickle=False) as z:
            for name in z.files:
                table[name].append(z[name])
    merged = {name: np.concatenate(parts) for name, parts in table.items()}
    if list(merged["sources"]) != [it.source for it in items]:
        raise UserError(
            f"analysis cache in {cache_dir} does not match the inputs: delete it and rebuild"
        )
    return merged, len(items) - len(todo)
