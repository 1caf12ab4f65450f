"""`slimswap eval temporal`: does the swapped face flicker, and does its identity hold over time?

Flicker is the mean absolute frame-to-frame change (grey levels, all channels) inside the
target's face region (the hull of its 68 landmarks on the ORIGINAL frame), for the swapped
video and for the original video over the very same pixels; real motion counts in both, so
their ratio isolates what the swap adds. Target: ratio <= 1.5. Identity over time is dlib's
descriptor of the swapped face every k frames, compared with the source photo and with the
original frame's own face.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from slimswap import media
from slimswap.errors import UserError
from slimswap.evaluate import report
from slimswap.face.analyser import FaceAnalyser, embedding_distance
from slimswap.face.select import iou
from slimswap.face.track import VideoFaces
from slimswap.swap.base import Swapper

TARGET_RATIO = 1.5
DETECT_EVERY = 5  # the pipeline's default: re-detect every k frames, follow landmarks between


def face_region(shape: tuple[int, int], landmarks: np.ndarray) -> np.ndarray:
    """Boolean mask of the convex hull of the 68 landmarks (jaw line and brows)."""
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(landmarks).astype(np.int32)), 1)
    return mask.astype(bool)


def region_change(prev: np.ndarray, cur: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute difference of two RGB frames over the masked pixels (grey levels)."""
    if not mask.any():
        return float("nan")
    return float(np.abs(cur[mask].astype(np.int16) - prev[mask].astype(np.int16)).mean())


def _even(frame: np.ndarray) -> np.ndarray:
    """The part VideoWriter encodes (it drops an odd last row/column)."""
    h, w = frame.shape[:2]
    return frame[: h - h % 2, : w - w % 2]


def _frames(path: Path):
    for batch in media.read_frames(path, 16):
        yield from (_even(f) for f in batch)


@dataclass
class OriginalTrack:
    """The target video's face per frame, its flicker, and its own identity at sampled frames."""

    landmarks: list[np.ndarray | None]
    boxes: list[np.ndarray | None]
    diffs: list[float]
    embeddings: dict[int, np.ndarray]


def track_original(video: Path, analyser: FaceAnalyser, every: int) -> OriginalTrack:
    """The face the pipeline swaps ("one": the largest face's track), followed the way the
    pipeline follows it: detected every DETECT_EVERY frames, re-landmarked in between."""
    lms: list[np.ndarray | None] = []
    boxes: list[np.ndarray | None] = []
    diffs: list[float] = []
    embs: dict[int, np.ndarray] = {}
    prev = None
    faces_in = VideoFaces(analyser, "one", detect_every=DETECT_EVERY)
    for t, frame in enumerate(_frames(video)):
        chosen = faces_in(t, frame)
        face = chosen[0] if chosen else None
        lms.append(None if face is None else face.landmarks)
        boxes.append(None if face is None else face.bbox)
        if t % every == 0 and face is not None:
            embs[t] = analyser.embed(frame, face).embedding
        if prev is not None:
            ok = lms[-1] is not None and lms[-2] is not None
            diffs.append(
                region_change(prev, frame, face_region(frame.shape[:2], lms[-1]))
                if ok
                else float("nan")
            )
        prev = frame
    if not lms:
        raise UserError(f"no frames decoded from {video}")
    return OriginalTrack(lms, boxes, diffs, embs)


@dataclass
class TemporalResult:
    model: str
    video: str
    frames: int
    frames_with_face: int
    flicker_original: float
    flicker_swapped: float
    flicker_ratio: float
    target_ratio: float
    meets_target: bool
    id_every: int
    id_samples: int
    id_detect_rate: float
    id_dist_to_source_mean: float
    id_dist_to_source_max: float
    id_dist_to_target_mean: float
    swap_fps: float
    seconds: float
    series: dict = field(default_factory=dict)


def _nanmean(values: Sequence[float]) -> float:
    arr = np.asarray(values, np.float64)
    return float(np.nanmean(arr)) if np.isfinite(arr).any() else float("nan")


def evaluate_swapped(
    name: str,
    video_name: str,
    original: OriginalTrack,
    swapped_video: Path,
    source_embedding: np.ndarray,
    analyser: FaceAnalyser,
    every: int,
    swap_fps: float = 0.0,
    seconds: float = 0.0,
) -> TemporalResult:
    """Flicker and ID-over-time of a swapped video against its original's track."""
    diffs, id_frames, to_src, to_tgt = [], [], [], []
    sampled = 0
    prev = None
    for t, frame in enumerate(_frames(swapped_video)):
        lm = original.landmarks[t] if t < len(original.landmarks) else None
        if prev is not None:
            ok = lm is not None and original.landmarks[t - 1] is not None
            diffs.append(
                region_change(prev, frame, face_region(frame.shape[:2], lm)) if ok else float("nan")
            )
        prev = frame
        if t in original.embeddings:
            sampled += 1
            found = [f for f in analyser.detect(frame) if iou(f.bbox, original.boxes[t]) >= 0.3]
            if found:
                face = analyser.embed(
                    frame, max(found, key=lambda f: iou(f.bbox, original.boxes[t]))
                )
                id_frames.append(t)
                to_src.append(embedding_distance(face.embedding, source_embedding))
                to_tgt.append(embedding_distance(face.embedding, original.embeddings[t]))
    frames = t + 1 if prev is not None else 0
    if frames != len(original.landmarks):
        raise UserError(
            f"swapped video has {frames} frames, the original {len(original.landmarks)}"
        )
    pairs = [(o, s) for o, s in zip(original.diffs, diffs) if np.isfinite(o) and np.isfinite(s)]
    f_orig = float(np.mean([o for o, _ in pairs])) if pairs else float("nan")
    f_swap = float(np.mean([s for _, s in pairs])) if pairs else float("nan")
    ratio = f_swap / f_orig if pairs and f_orig > 0 else float("nan")
    return TemporalResult(
        model=name,
        video=video_name,
        frames=frames,
        frames_with_face=sum(lm is not None for lm in original.landmarks),
        flicker_original=f_orig,
        flicker_swapped=f_swap,
        flicker_ratio=ratio,
        target_ratio=TARGET_RATIO,
        meets_target=bool(np.isfinite(ratio) and ratio <= TARGET_RATIO),
        id_every=every,
        id_samples=len(id_frames),
        id_detect_rate=len(id_frames) / sampled if sampled else float("nan"),
        id_dist_to_source_mean=_nanmean(to_src),
        id_dist_to_source_max=max(to_src) if to_src else float("nan"),
        id_dist_to_target_mean=_nanmean(to_tgt),
        swap_fps=swap_fps,
        seconds=seconds,
        series={
            "frame_change_original": original.diffs,
            "frame_change_swapped": diffs,
            "id_frames": id_frames,
            "id_dist_to_source": to_src,
            "id_dist_to_target": to_tgt,
        },
    )


def evaluate_temporal(
    swappers: Sequence[Swapper],
    video: Path,
    source: Path,
    every: int = 10,
    max_frames: int = 0,
    analyser: FaceAnalyser | None = None,
) -> list[TemporalResult]:
    """Swap `video` with each swapper (the full pipeline, written and decoded like a user's
    file) and measure flicker and identity over time against the original."""
    from slimswap.evaluate.bench_e2e import trim_video
    from slimswap.pipeline import SwapOptions, load_source_identity, swap_video

    if every < 1:
        raise UserError("--every must be at least 1")
    for p, what in ((video, "video"), (source, "source")):
        if not Path(p).is_file():
            raise UserError(f"{what} file not found: {p}")
    analyser = analyser or FaceAnalyser()
    results = []
    with tempfile.TemporaryDirectory(prefix="slimswap-temporal-") as tmp_name:
        tmp = Path(tmp_name)
        target = (
            trim_video(Path(video), tmp / "original.mp4", max_frames) if max_frames else Path(video)
        )
        original = track_original(target, analyser, every)
        if not any(lm is not None for lm in original.landmarks):
            raise UserError(f"no face found in {video}")
        for sw in swappers:
            start = time.perf_counter()
            src_emb = load_source_identity(Path(source), analyser, sw.resolution).embedding
            out = tmp / f"swapped_{len(results)}.mp4"
            options = SwapOptions(overwrite=True, detect_every=DETECT_EVERY)
            rep = swap_video(Path(source), target, out, sw, options, analyser)
            results.append(
                evaluate_swapped(
                    sw.name,
                    Path(video).name,
                    original,
                    out,
                    src_emb,
                    analyser,
                    every,
                    rep.fps,
                    time.perf_counter() - start,
                )
            )
    return results


# ----------------------------------------------------------------------------- report


def markdown_table(results: Sequence[TemporalResult]) -> str:
    rows = [
        [
            r.model,
            r.video,
            r.frames,
            r.flicker_original,
            r.flicker_swapped,
            r.flicker_ratio,
            "yes" if r.meets_target else "no",
            r.id_dist_to_source_mean,
            r.id_dist_to_source_max,
            r.id_dist_to_target_mean,
            f"{r.id_samples} (every {r.id_every})",
        ]
        for r in results
    ]
    head = [
        "model",
        "video",
        "frames",
        "flicker original",
        "flicker swapped",
        "ratio",
        f"ratio <= {TARGET_RATIO}",
        "ID → source mean",
        "ID → source max",
        "ID → target mean",
        "ID samples",
    ]
    return report.markdown_table(head, rows)


def save_temporal_report(
    results: Sequence[TemporalResult], out_dir: Path, command: str, env: dict, config: dict
) -> dict[str, Path]:
    out_dir = Path(out_dir)
    paths = {
        k: out_dir / f"temporal{s}" for k, s in (("json", ".json"), ("md", ".md"), ("png", ".png"))
    }
    report.write_json(
        paths["json"],
        {
            "environment": env,
            "command": command,
            "config": config,
            "results": [asdict(r) for r in results],
        },
    )
    md = [
        report.header("slimswap eval temporal", env, command),
        markdown_table(results),
        (
            "\nflicker: mean |frame t - frame t-1| (grey levels) inside the original face's landmark hull "
            "at frame t, over frames where the face is tracked in both; ratio = swapped / original. "
            "ID: dlib distance of the swapped face to the source photo and to the original frame's face.\n"
        ),
        f"![temporal]({paths['png'].name})\n",
    ]
    report.write_text(paths["md"], "\n".join(md))
    _chart(results, paths["png"])
    return paths


def _chart(results: Sequence[TemporalResult], path: Path) -> None:
    plt = report.pyplot()
    fig, (a, b) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    if results:
        orig = results[0].series["frame_change_original"]
        a.plot(range(1, len(orig) + 1), orig, color="k", lw=1, label="original")
    for r in results:
        s = r.series["frame_change_swapped"]
        a.plot(range(1, len(s) + 1), s, lw=1, label=f"{r.model} (ratio {r.flicker_ratio:.2f})")
        b.plot(
            r.series["id_frames"],
            r.series["id_dist_to_source"],
            marker="o",
            ms=3,
            label=f"{r.model} → source",
        )
        b.plot(
            r.series["id_frames"],
            r.series["id_dist_to_target"],
            marker="x",
            ms=3,
            ls=":",
            label=f"{r.model} → target",
        )
    a.set_ylabel("face-region change\n(grey levels / frame)")
    a.set_title(f"temporal stability on {results[0].video if results else ''}")
    a.legend(fontsize=8)
    b.axhline(0.6, color="k", lw=0.8, ls="--")
    b.set_ylabel("dlib ID distance")
    b.set_xlabel("frame")
    b.legend(fontsize=8)
    fig.tight_layout()
    report.save_figure(fig, path)
