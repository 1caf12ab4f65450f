"""The analysis step of the data build: each image read strictly, its labelled face found,
landmarked and embedded by dlib in a worker process, and the results cached per chunk of
inputs (an interrupted build resumes from the cache).

A second pass (`_mesh_all`) finds the same face with MediaPipe, the product's default
analyser, and keeps its 68 mapped landmarks beside dlib's: a generator trained only on dlib's
points drew the lower face from where dlib puts the jaw and closed open mouths when the
product drove it with the mesh's (benchmarks/RESULTS.md, "MediaPipe-driven"). It has its own
cache files, so adding it to a finished build re-runs no dlib analysis."""

from __future__ import annotations

import functools
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
from slimswap.files import sha256_file
from slimswap.train.build_config import BuildConfig, _Item
from slimswap.train.shards import write_npz

log = logging.getLogger(__name__)

# Bump when detection, landmarks or embedding change: it is part of every cache key.
ANALYSIS_VERSION = 2  # 2: keyed by content (1: by modification time)
# Bump when the MediaPipe pass (its detector, mesh or the mesh -> 68 map) changes.
MESH_VERSION = 1


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
    _worker.update(
        detect_max_side=detect_max_side, retry_max_side=retry_max_side, analyser=None, mesh=None
    )


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


def _mesh_analyser():
    if _worker.get("mesh") is None:
        from slimswap.face.analyser import FaceAnalyser

        # one ONNX thread: the pool already uses the cores
        _worker["mesh"] = FaceAnalyser(detector="mediapipe", threads=1)
    return _worker["mesh"]


def _mesh(job: tuple[str, np.ndarray]) -> dict:
    """MediaPipe's 68 mapped landmarks of the face dlib picked (the box given), as the product
    finds it: the detection overlapping dlib's box, else the mesh run in dlib's box."""
    from slimswap.face.select import match_face

    path, box = job
    try:
        frame = read_rgb_strict(Path(path))
        fa = _mesh_analyser()
        face = match_face(fa.detect(frame), box)
        detected = face is not None
        if face is None:
            face = fa.face_from_box(frame, box, 0.0)
    except Exception as exc:  # noqa: BLE001 (an odd image keeps dlib's landmarks only; logged)
        log.warning("mesh failed on %s: %s: %s", path, type(exc).__name__, exc)
        return {"landmarks": np.full((68, 2), np.nan, np.float32), "detected": False}
    return {"landmarks": face.landmarks.astype(np.float32), "detected": detected}


def _pack_mesh_chunk(items: Sequence[_Item], results: Sequence[dict]) -> dict[str, np.ndarray]:
    return {
        "sources": np.array([it.source for it in items]),
        "mesh_landmarks": np.stack([r["landmarks"] for r in results]).astype(np.float32),
        "mesh_detected": np.array([r["detected"] for r in results], bool),
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


def _chunk_key(items: Sequence[_Item], cfg: BuildConfig, version: tuple = ()) -> str:
    """The cache key of a chunk: the parameters and each input's name and content hash.

    Content, not modification times: a fresh copy of the same data (a new checkout of
    ../shared, a CI machine) finds the analysis it already paid for.
    """
    stats = []
    for it in items:
        st = it.path.stat()
        stats.append((it.source, _content_hash(str(it.path), st.st_size, st.st_mtime_ns)))
    blob = json.dumps(
        [ANALYSIS_VERSION, cfg.detect_max_side, cfg.upsample_retry_max_side, *version, stats]
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


@functools.cache
def _content_hash(path: str, size: int, mtime_ns: int) -> str:
    """A file's content hash, computed once per process for each (path, size, mtime): the
    size and time only decide when to hash again, never the key itself."""
    return sha256_file(path)[:16]


def _imap(pool, fn, args: Iterable, chunksize: int = 4) -> Iterator:
    return pool.map(fn, args, chunksize=chunksize) if pool is not None else map(fn, args)


def _cached_chunks(
    items: list[_Item],
    jobs: list,
    cache_dir: Path,
    cfg: BuildConfig,
    pool,
    bar,
    prefix: str,
    what: str,
    fn,
    pack,
    version: tuple = (),
) -> tuple[dict[str, np.ndarray], int]:
    """fn(job) for every item (jobs aligned with items), packed and cached per chunk of
    inputs in `<prefix>_<key>.npz`; chunks already in the cache are not recomputed. Returns
    the merged table and how many items came from the cache."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    step = cfg.chunk_images
    chunks = [range(i, min(i + step, len(items))) for i in range(0, len(items), step)]
    paths = [
        cache_dir / f"{prefix}_{_chunk_key([items[i] for i in c], cfg, version)}.npz"
        for c in chunks
    ]
    pending = [k for k, p in enumerate(paths) if not p.is_file()]
    todo = [i for k in pending for i in chunks[k]]
    task = bar.add_task(what, total=len(items), completed=len(items) - len(todo))
    results = _imap(pool, fn, [jobs[i] for i in todo])
    start = time.perf_counter()
    done = 0
    for k, ck in enumerate(pending):
        chunk_results = []
        for _ in chunks[ck]:
            chunk_results.append(next(results))
            bar.advance(task)
        write_npz(paths[ck], pack([items[i] for i in chunks[ck]], chunk_results))
        done += len(chunks[ck])
        rate = done / max(time.perf_counter() - start, 1e-9)
        log.info(
            "%s: chunk %d/%d (%d/%d new images, %.1f img/s, about %.0f s left)",
            what,
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


def _analyse_all(
    items: list[_Item], cache_dir: Path, cfg: BuildConfig, pool, bar
) -> tuple[dict, int]:
    """dlib's analysis table aligned with items, and how many items came from the cache."""
    jobs = [str(it.path) for it in items]
    return _cached_chunks(
        items, jobs, cache_dir, cfg, pool, bar, "analysis", "analysing faces", _analyse, _pack_chunk
    )


def _mesh_all(
    items: list[_Item], table: dict, cache_dir: Path, cfg: BuildConfig, pool, bar
) -> dict:
    """MediaPipe's 68 mapped landmarks of each analysed face (NaN where dlib found none),
    and whether BlazeFace found the face itself (else the mesh ran in dlib's box)."""
    idx = np.flatnonzero(table["reasons"] == "")
    sub, _ = _cached_chunks(
        [items[i] for i in idx],
        [(str(items[i].path), table["bbox"][i]) for i in idx],
        cache_dir,
        cfg,
        pool,
        bar,
        "mesh",
        "mesh landmarks",
        _mesh,
        _pack_mesh_chunk,
        version=("mesh", MESH_VERSION),
    )
    out = {
        "mesh_landmarks": np.full((len(items), 68, 2), np.nan, np.float32),
        "mesh_detected": np.zeros(len(items), bool),
    }
    out["mesh_landmarks"][idx] = sub["mesh_landmarks"]
    out["mesh_detected"][idx] = sub["mesh_detected"]
    return out
