"""Video clips as `<identity>/<image>` folders, so the data build treats frames like photos.

A talking-head clip is thousands of frames of one person in many poses and expressions at
480-1364 px: the best same-person, high-resolution material the project has, and exactly what
photo sets of many people lack. The build needs a folder per identity, so each clip becomes
one identity folder of evenly spaced frames (consecutive frames are near duplicates).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from slimswap.errors import UserError

# Clips kept out of every training shard: the demo's clip (d10) so the bundled demo never shows
# a person the generator trained on, one more 512 px talking head and one 1280x720 clip with a
# smaller face. Evaluation reads their frames as same-person cross-frame pairs.
HELD_OUT_CLIPS = ("liveportrait_driving_d10", "liveportrait_driving_d3", "liveportrait_source_s32")


def frame_indices(frame_count: int, keep: int) -> np.ndarray:
    """`keep` indices spread evenly over the clip (all of them when it is shorter)."""
    if frame_count <= keep:
        return np.arange(frame_count)
    return np.unique(np.linspace(0, frame_count - 1, keep).round().astype(int))


def extract_clip(video: Path, out_dir: Path, keep: int, quality: int = 95) -> int:
    """Write `keep` evenly spaced frames of `video` as JPEGs into `out_dir`; returns the count.

    A finished folder (marked by `.done`) is left as it is, so a re-run costs nothing; frames
    are written under a temporary name and renamed, so an interrupted run leaves no half file.
    """
    from slimswap.media import probe_video, read_frames

    done = out_dir / ".done"
    if done.is_file():
        return len(list(out_dir.glob("*.jpg")))
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = set(frame_indices(probe_video(video).frame_count, keep).tolist())
    index = written = 0
    for batch in read_frames(video, 16):
        for rgb in batch:
            if index in wanted:
                path = out_dir / f"{index:05d}.jpg"
                tmp = out_dir / f".{index:05d}.tmp.jpg"
                bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
                if not cv2.imwrite(str(tmp), bgr, [cv2.IMWRITE_JPEG_QUALITY, quality]):
                    raise UserError(f"could not write {tmp}")
                os.replace(tmp, path)
                written += 1
            index += 1
    done.write_text(f"{written}\n")
    return written


def extract_clips(
    videos: Sequence[Path], out_root: Path, keep_train: int = 150, keep_held_out: int = 48
) -> tuple[Path, Path]:
    """Frames of every clip, in `out_root/train/<clip>/` or `out_root/held_out/<clip>/`.

    Returns the two roots, ready to pass to `build_dataset` as a training input and an extra
    test set.
    """
    train, held = out_root / "video_train", out_root / "video_held_out"
    for video in videos:
        is_held = video.stem in HELD_OUT_CLIPS
        extract_clip(
            video,
            (held if is_held else train) / video.stem,
            keep_held_out if is_held else keep_train,
        )
    return train, held
