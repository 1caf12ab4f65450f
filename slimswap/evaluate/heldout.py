"""Held-out faces for evaluation: which photos, who is in them, and the face in each.

Three kinds of set, all of people no training step saw:
- a test shard of the data build (`test_128.npz`, `deepface_128.npz`): its `sources` name the
  original photos under ../shared/data, and its dlib descriptors and aligned crops give the
  identity galleries without analysing every photo again;
- a folder of `<identity>/<photo>` (deepface_testset when no shard is built, and --quick);
- frames of the held-out video clips (`train.video_frames.HELD_OUT_CLIPS`), one identity per
  clip, whose frame numbers let pairs be taken a second or more apart.
Faces are found on the photo itself (long side capped at `max_side`), so the swap and every
metric work at the resolution a user's photo has, not on the shard's 128 px crops.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from slimswap.errors import UserError
from slimswap.face.analyser import Face, FaceAnalyser, embedding_distance
from slimswap.face.select import match_face

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
DETECT_MAX_SIDE = 1024  # as the data build: HOG runs on a copy this size, landmarks on the photo
UPSAMPLE_RETRY_MAX_SIDE = 800  # small photos without a face found are retried at 2x
DEFAULT_FPS = 30.0


# ----------------------------------------------------------------------------- image helpers


def load_rgb(path: Path, max_side: int | None = None) -> np.ndarray:
    """A photo as RGB uint8, shrunk (INTER_AREA) so its long side is at most `max_side`."""
    from slimswap.media import read_image

    return shrink(read_image(path), max_side)


def shrink(img: np.ndarray, max_side: int | None) -> np.ndarray:
    """The image with its long side at most `max_side` (INTER_AREA), unchanged if smaller."""
    if not max_side or max(img.shape[:2]) <= max_side:
        return img
    s = max_side / max(img.shape[:2])
    return cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)


def resize(img: np.ndarray, size: int) -> np.ndarray:
    """A square image at `size` (INTER_AREA down, bilinear up)."""
    if img.shape[0] == size:
        return img
    inter = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=inter)


def face_view(frame: np.ndarray, face: Face, size: int = 128) -> np.ndarray:
    """A square aligned view of the face (robustness grid)."""
    from slimswap.face.align import align

    crop, _ = align(frame, face.kps, size)
    return crop


def face_box_view(
    frame: np.ndarray, landmarks: np.ndarray, size: int, context: float = 1.5
) -> np.ndarray:
    """The frame around the face (not rotated), `context` x the landmarks' extent, at size x size.

    Cut from the full-resolution frame, so what the swap did to the photo's own pixels shows;
    black where the square leaves the frame.
    """
    lm = np.asarray(landmarks, np.float64)
    centre = (lm.min(0) + lm.max(0)) / 2
    half = context * float((lm.max(0) - lm.min(0)).max()) / 2
    x0, y0 = np.floor(centre - half).astype(int)
    side = max(2, int(np.ceil(2 * half)))
    h, w = frame.shape[:2]
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
    view = np.zeros((side, side, 3), np.uint8)
    if cx1 > cx0 and cy1 > cy0:
        view[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = frame[cy0:cy1, cx0:cx1]
    inter = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(view, (size, size), interpolation=inter)


# ----------------------------------------------------------------------------- the sets


@dataclass
class HeldOutSet:
    """Photos (or frames) of held-out identities.

    dlib (N, 128) and crops (N, S, S, 3) come from a shard when one is used (the galleries);
    for folders they stay None and are filled by analysing every photo.
    """

    name: str
    kind: str  # "photos" | "video"
    paths: list[Path]
    labels: np.ndarray
    identities: list[str]
    dlib: np.ndarray | None = None
    crops: np.ndarray | None = None
    frame_index: np.ndarray | None = None  # video: frame number in its clip
    fps: np.ndarray | None = None  # video: frames per second of each photo's clip

    def __len__(self) -> int:
        return len(self.paths)


def unseen_mask(shard, seen_shard_path: Path | None, threshold: float = 0.36) -> np.ndarray:
    """Rows of `shard` whose identity a model trained on `seen_shard_path` never saw.

    An identity counts as seen when its name is in the training shard or its mean dlib
    descriptor lies within `threshold` of a training identity's (the same person filed under
    another name, as the data build's leak guard defines it).
    """
    keep = np.ones(len(shard), bool)
    if seen_shard_path is None:
        return keep
    from slimswap.train.shards import load_shard

    seen = load_shard(seen_shard_path)
    seen_names = {str(n) for n in seen.identities}
    seen_c = np.stack(
        [
            seen.embeddings[seen.labels == i].astype(np.float32).mean(0)
            for i in range(len(seen.identities))
        ]
    )
    for i, name in enumerate(shard.identities):
        rows = shard.labels == i
        if not rows.any():
            continue
        c = shard.embeddings[rows].astype(np.float32).mean(0)
        if str(name) in seen_names or np.linalg.norm(seen_c - c, axis=1).min() < threshold:
            keep[rows] = False
    return keep


def set_from_shard(
    shard_path: Path, roots: Sequence[Path], exclude_seen: Path | None = None
) -> HeldOutSet:
    """A test shard's photos with its descriptors and crops as galleries.

    A shard's `sources` are relative to the folder the build read: ../shared/data for photos,
    the build's frames folder for video frames; each is looked up under `roots` in turn.
    """
    from slimswap.train.shards import load_shard

    if not Path(shard_path).is_file():
        raise UserError(
            f"test shard not found: {shard_path}; build it with `slimswap data build` or pass --shards DIR"
        )
    shard = load_shard(shard_path)
    rows = np.flatnonzero(unseen_mask(shard, exclude_seen))
    labels = np.asarray(shard.labels)[rows]
    used = np.unique(labels)
    remap = {int(old): new for new, old in enumerate(used)}
    return HeldOutSet(
        name=Path(shard_path).stem,
        kind="photos",
        paths=[_find(str(shard.sources[i]), roots) for i in rows],
        labels=np.array([remap[int(v)] for v in labels]),
        identities=[str(shard.identities[i]) for i in used],
        dlib=np.asarray(shard.embeddings, np.float32)[rows],
        crops=shard.decode(rows),
    )


def _find(source: str, roots: Sequence[Path]) -> Path:
    for root in roots:
        if (root / source).is_file():
            return root / source
    where = ", ".join(str(r) for r in roots)
    raise UserError(
        f"photo {source} of the test shard is not under {where}; pass --frames/--shards"
    )


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def set_from_folder(
    folder: Path,
    per_identity: int | None = None,
    identities: int | None = None,
    smallest: bool = False,
) -> HeldOutSet:
    """`<folder>/<identity>/<photo>`; optionally the first `identities` people with at least
    two photos and `per_identity` photos each (the smallest files first when `smallest`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"face folder not found: {folder}")
    people = [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith("_")]
    if identities is not None:
        people = [p for p in people if len(_images(p)) >= 2][:identities]
    paths, labels = [], []
    for label, person in enumerate(people):
        files = _images(person)
        if smallest:
            files = sorted(files, key=lambda p: p.stat().st_size)
        files = files[:per_identity] if per_identity else files
        paths += files
        labels += [label] * len(files)
    if len(set(labels)) < 2:
        raise UserError(f"{folder} needs photos of at least two people in <identity>/ subfolders")
    return HeldOutSet(folder.name, "photos", paths, np.array(labels), [p.name for p in people])


def clip_fps(clip: str, videos_dir: Path | None) -> float:
    """The clip's frame rate from its video under ../shared/data/videos, else 30."""
    video = videos_dir / f"{clip}.mp4" if videos_dir else None
    if video is not None and video.is_file():
        from slimswap.media import probe_video

        return float(probe_video(video).fps)
    return DEFAULT_FPS


def set_from_frames(
    frames_dir: Path,
    videos_dir: Path | None,
    clips: Sequence[str] | None = None,
    per_clip: int | None = None,
) -> HeldOutSet:
    """Frames `<frames_dir>/<clip>/NNNNN.jpg` (NNNNN = frame number), one identity per clip."""
    from slimswap.train.video_frames import HELD_OUT_CLIPS

    clips = [c for c in (clips or HELD_OUT_CLIPS) if (frames_dir / c).is_dir()]
    if not clips:
        raise UserError(
            f"no held-out clip frames in {frames_dir}; run the data build or pass --frames DIR"
        )
    paths, labels, index, fps = [], [], [], []
    for label, clip in enumerate(clips):
        files = sorted(_images(frames_dir / clip), key=lambda p: int(p.stem))
        if per_clip:
            files = [
                files[i]
                for i in np.linspace(0, len(files) - 1, min(per_clip, len(files)))
                .round()
                .astype(int)
            ]
        rate = clip_fps(clip, videos_dir)
        paths += files
        labels += [label] * len(files)
        index += [int(p.stem) for p in files]
        fps += [rate] * len(files)
    return HeldOutSet(
        frames_dir.name,
        "video",
        paths,
        np.array(labels),
        list(clips),
        frame_index=np.array(index),
        fps=np.array(fps),
    )


def held_out_frames(
    frames_dir: Path | None,
    videos_dir: Path | None,
    cache: Path,
    clips: Sequence[str] | None = None,
) -> Path:
    """The data build's held-out frame folders, or the same frames extracted into `cache`."""
    from slimswap.train.video_frames import HELD_OUT_CLIPS, extract_clip

    if frames_dir is not None and frames_dir.is_dir():
        return frames_dir
    if videos_dir is None or not videos_dir.is_dir():
        raise UserError(
            "held-out clips need ../shared/data/videos (or --frames DIR from the data build)"
        )
    out = cache / "video_held_out"
    for clip in clips or HELD_OUT_CLIPS:
        video = videos_dir / f"{clip}.mp4"
        if video.is_file():
            extract_clip(video, out / clip, keep=48)  # the data build's keep_held_out
    return out


# ----------------------------------------------------------------------------- pairs


def cross_pairs(labels: np.ndarray, n: int, seed: int = 0) -> list[tuple[int, int]]:
    """Up to n distinct (source, target) pairs of different identities, deterministic.

    Balanced over people: the two identities are drawn uniformly, then a photo of each, so a
    clip's 150 frames in a test split weigh no more than another person's three photos.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    ids, counts = np.unique(labels, return_counts=True)
    members = [np.flatnonzero(labels == i) for i in ids]
    limit = min(n, len(labels) ** 2 - int((counts**2).sum()))
    seen: set[tuple[int, int]] = set()
    pairs: list[tuple[int, int]] = []
    for _ in range(100 * limit + 1000):
        if len(pairs) >= limit:
            break
        a, b = rng.choice(len(ids), 2, replace=False)
        s, t = int(rng.choice(members[a])), int(rng.choice(members[b]))
        if (s, t) not in seen:
            seen.add((s, t))
            pairs.append((s, t))
    return pairs


def same_pairs(
    labels: np.ndarray,
    n: int,
    seed: int = 0,
    frame_index: np.ndarray | None = None,
    min_gap: np.ndarray | float = 0,
) -> list[tuple[int, int]]:
    """Up to n (source, target) pairs of different photos of the same identity; for video
    frames, at least `min_gap` frames apart (per photo, e.g. one second of its clip).

    Balanced over people: identities take turns (in a random order), each giving its next
    random pair, so one person with many photos cannot fill the list.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    gap = np.broadcast_to(np.asarray(min_gap, np.float64), labels.shape)
    per_identity = []
    for lab in np.unique(labels):
        idx = np.flatnonzero(labels == lab)
        pairs = [
            (int(s), int(t))
            for s in idx
            for t in idx
            if s != t
            and (frame_index is None or abs(int(frame_index[s]) - int(frame_index[t])) >= gap[t])
        ]
        per_identity.append([pairs[i] for i in rng.permutation(len(pairs))])
    order = rng.permutation(len(per_identity))
    out: list[tuple[int, int]] = []
    for k in range(max(map(len, per_identity), default=0)):
        out += [per_identity[i][k] for i in order if k < len(per_identity[i])]
    return out[:n]


# ----------------------------------------------------------------------------- analysis


class Photos:
    """Frames (a few kept in memory) and their analysed face (all kept), by path.

    The face is what the pipeline would swap: dlib's detection (run, as in the data build, on
    a copy at most DETECT_MAX_SIDE px) with landmarks and descriptor on the photo itself. With
    several faces, the one nearest the shard's descriptor (`hint`) is the labelled person.
    """

    def __init__(self, analyser: FaceAnalyser, max_side: int | None, keep_frames: int = 6) -> None:
        self.analyser, self.max_side, self.keep = analyser, max_side, keep_frames
        self.frames: OrderedDict[Path, np.ndarray] = OrderedDict()
        self.faces: dict[Path, Face | None] = {}
        self.shrunk: set[Path] = set()

    def frame(self, path: Path) -> np.ndarray:
        if path in self.frames:
            self.frames.move_to_end(path)
            return self.frames[path]
        img = load_rgb(path)
        if self.max_side and max(img.shape[:2]) > self.max_side:
            self.shrunk.add(path)
            img = shrink(img, self.max_side)
        self.frames[path] = img
        while len(self.frames) > self.keep:
            self.frames.popitem(last=False)
        return img

    def face(self, path: Path, hint: np.ndarray | None = None) -> Face | None:
        if path not in self.faces:
            self.faces[path] = self._analyse(self.frame(path), hint)
        return self.faces[path]

    def _analyse(self, frame: np.ndarray, hint: np.ndarray | None) -> Face | None:
        from slimswap.train.build import pick_face

        h, w = frame.shape[:2]
        scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
        small = (
            cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
            if scale < 1
            else frame
        )
        boxes = self.analyser.detect_boxes(small)
        if not boxes and max(h, w) <= UPSAMPLE_RETRY_MAX_SIDE:
            boxes = self.analyser.detect_boxes(small, upsample=1)
        faces = [self.analyser.face_from_box(frame, box / scale, score) for box, score in boxes]
        if not faces:
            return None
        if hint is not None and len(faces) > 1:
            faces = [self.analyser.embed(frame, f) for f in faces]
            return min(faces, key=lambda f: embedding_distance(f.embedding, hint))
        return self.analyser.embed(frame, pick_face(faces, frame.shape))


def redetect(
    frame: np.ndarray, face: Face, analyser: FaceAnalyser, face_px: float = 160.0
) -> Face | None:
    """dlib's detection of the swapped face at `face`'s place, with landmarks at full size.

    HOG runs on the face's neighbourhood resized so the face is about `face_px` wide (fast on
    any photo size; upsampled once for faces under 80 px, dlib's smallest); the landmarks
    are then fitted on the full-resolution frame.
    """
    x0, y0, x1, y1 = (float(v) for v in face.bbox)
    bw, bh = x1 - x0, y1 - y0
    h, w = frame.shape[:2]
    rx0, ry0 = max(0, int(x0 - 0.6 * bw)), max(0, int(y0 - 0.6 * bh))
    rx1, ry1 = min(w, int(x1 + 0.6 * bw) + 1), min(h, int(y1 + 0.6 * bh) + 1)
    roi = frame[ry0:ry1, rx0:rx1]
    scale = min(1.0, face_px / max(bw, 1.0))
    if scale < 1.0:
        roi = cv2.resize(
            roi,
            (max(1, round(roi.shape[1] * scale)), max(1, round(roi.shape[0] * scale))),
            interpolation=cv2.INTER_AREA,
        )
    ups = 1 if bw * scale < 80 else 0
    boxes = analyser.detect_boxes(roi, upsample=ups)
    found = [
        analyser.face_from_box(
            frame, box / scale + np.array([rx0, ry0, rx0, ry0], np.float32), score
        )
        for box, score in boxes
    ]
    return match_face(found, face.bbox)
