"""pipeline.swap_frames with a stub swapper: exactly the given faces change, nothing else."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from slimswap import media
from slimswap.options import PasteOptions
from slimswap.paths import EXAMPLES_DIR
from slimswap.pipeline import swap_frames
from slimswap.swap.base import SourceIdentity

MAGENTA = (255, 0, 255)


class PaintingSwapper:
    """Paints every crop magenta and records what it was given."""

    name, resolution = "painter", 128

    def __init__(self) -> None:
        self.calls: list[tuple[np.ndarray, np.ndarray]] = []

    def swap(self, crops, identity, target_landmarks=None):
        self.calls.append((crops.copy(), target_landmarks))
        return np.broadcast_to(np.array(MAGENTA, np.uint8), crops.shape).copy()


@pytest.fixture(scope="module")
def two_people(analyser):
    """Grace Hopper beside the astronaut in one frame, and their faces, left first."""
    left = cv2.resize(media.read_image(EXAMPLES_DIR / "grace_hopper.jpg"), (384, 448))
    right = cv2.resize(media.read_image(EXAMPLES_DIR / "astronaut.png"), (448, 448))
    frame = np.ascontiguousarray(np.hstack([left, right]))
    faces = sorted(analyser.detect(frame), key=lambda f: f.bbox[0])
    assert len(faces) == 2
    return frame, faces


def _grown(bbox: np.ndarray, shape: tuple[int, ...], grow: float) -> tuple[slice, slice]:
    x0, y0, x1, y1 = bbox
    dx, dy = grow * (x1 - x0), grow * (y1 - y0)
    rows = slice(max(0, int(y0 - dy)), min(shape[0], int(y1 + dy) + 1))
    cols = slice(max(0, int(x0 - dx)), min(shape[1], int(x1 + dx) + 1))
    return rows, cols


def test_swap_frames_replaces_the_given_faces_and_nothing_else(two_people):
    frame, (hopper, astronaut) = two_people
    frames = [frame.copy(), np.full_like(frame, 90), frame.copy()]
    before = [f.copy() for f in frames]
    painter = PaintingSwapper()
    identity = SourceIdentity(
        np.zeros(128, np.float32), frame[:128, :128], np.zeros((68, 2), np.float32)
    )
    faces = [[astronaut], [], [hopper, astronaut]]
    out = swap_frames(frames, faces, painter, identity, PasteOptions(color_correction=False))

    assert all(np.array_equal(a, b) for a, b in zip(frames, before))  # inputs untouched
    assert len(out) == 3 and all(o.shape == frame.shape and o.dtype == np.uint8 for o in out)
    ((crops, landmarks),) = painter.calls  # every face of every frame in one call
    assert crops.shape == (3, 128, 128, 3) and landmarks.shape == (3, 68, 2)
    assert np.array_equal(out[1], frames[1])  # no face given: the frame comes back as it was

    changed = np.any(out[0] != frame, axis=2)
    rows, cols = _grown(astronaut.bbox, frame.shape, 0.6)
    outside = np.ones_like(changed)
    outside[rows, cols] = False
    assert not changed[outside].any()  # only around the astronaut's face
    rows, cols = _grown(hopper.bbox, frame.shape, 0.0)
    assert not changed[rows, cols].any()  # Grace Hopper's face untouched
    centre = astronaut.landmarks[27:36].mean(0).astype(int)  # nose: deep inside the mask
    assert np.abs(out[0][centre[1], centre[0]].astype(int) - MAGENTA).max() <= 2

    for face in (hopper, astronaut):  # both given in the third frame: both replaced
        x, y = face.landmarks[27:36].mean(0).astype(int)
        assert np.abs(out[2][y, x].astype(int) - MAGENTA).max() <= 2
