"""The expression metrics see a closed mouth pasted over an open one, and the quality swap
keeps an open mouth open (issue 20)."""

from __future__ import annotations

import numpy as np
import pytest

from slimswap import media
from slimswap.evaluate import expression
from slimswap.face.align import align, transform_points
from slimswap.face.blend import paste_back
from slimswap.face.mask import area_mask
from slimswap.paths import EXAMPLES_DIR
from slimswap.pipeline import load_source_identity, swap_frames
from slimswap.swap.registry import load_swapper

OPEN_FRAME = 60  # the bundled clip's frame 60: the target's mouth is wide open


@pytest.fixture(scope="module")
def open_mouth(analyser):
    """(frame, its largest face) of an open-mouthed frame of the bundled clip."""
    frames = [f for b in media.read_frames(EXAMPLES_DIR / "clip.mp4", 16) for f in b]
    frame = frames[OPEN_FRAME]
    face = max(analyser.detect(frame), key=lambda f: f.area)
    return frame, face


def _landmarks_again(analyser, image, near) -> np.ndarray:
    from slimswap.face.select import iou

    found = [f for f in analyser.detect(image) if iou(f.bbox, near.bbox) > 0.3]
    assert found, "no face found again where the paste was"
    return found[0].landmarks


def test_mouth_metric_flags_a_closed_mouth_pasted_over_an_open_one(analyser, open_mouth):
    frame, target = open_mouth
    assert expression.mouth_opening(target.landmarks) > 0.1  # the premise: wide open
    # a face copy: Grace Hopper (mouth closed) aligned on her own keypoints and pasted into the
    # target's aligned frame, i.e. a swap that ignores the target's expression
    source = media.read_image(EXAMPLES_DIR / "grace_hopper.jpg")
    src_face = max(analyser.detect(source), key=lambda f: f.area)
    src_crop, src_affine = align(source, src_face.kps, 256)
    _, tgt_affine = align(frame, target.kps, 256)
    mask = area_mask(transform_points(src_face.landmarks, src_affine), 256)
    pasted = paste_back(frame, src_crop, tgt_affine, mask)

    scores = expression.pair_scores(_landmarks_again(analyser, pasted, target), target.landmarks)
    assert scores["mouth_missed"] == 1.0 and scores["mouth_open_err"] > 0.1, scores
    same = expression.pair_scores(_landmarks_again(analyser, frame, target), target.landmarks)
    assert same["mouth_missed"] == 0.0 and same["mouth_open_err"] < 0.01, same  # not always on
    summary = expression.summary([scores, same])
    assert summary["mouth_missed_share"] == 0.5 and summary["open_mouth_pairs"] == 2


def test_quality_swap_keeps_an_open_mouth_open(analyser, analyser_dlib, open_mouth):
    """The product's default swap (MediaPipe's landmarks drive it) of an open-mouthed frame,
    judged by dlib's 68 points as `eval swapper` judges. MediaPipe's own mesh is no judge
    here: its lip model puts the swap's inner lower lip on the target's tongue (0.075 for
    this mouth, open or not). The v2 teacher fails this: 0.024 against the target's 0.117."""
    frame, target = open_mouth
    swapper = load_swapper("quality", "cpu")
    source = EXAMPLES_DIR / "grace_hopper.jpg"
    identity = load_source_identity(source, analyser, swapper.resolution)
    (out,) = swap_frames([frame], [[target]], swapper, identity)
    judged = max(analyser_dlib.detect(frame), key=lambda f: f.area)
    got = expression.mouth_opening(_landmarks_again(analyser_dlib, out, judged))
    want = expression.mouth_opening(judged.landmarks)
    assert want > 0.1 and abs(got - want) <= 0.03, (got, want)


def test_quality_swap_keeps_the_clips_open_mouths_open(analyser, analyser_dlib):
    """Every 6th frame of the bundled clip, MediaPipe driving the swap and dlib judging it:
    of the frames whose mouth is open, at most 3 come out closed, and the opening is off by
    at most 0.03 on average. Measured 3 of 16, mean |error| 0.0257 (signed -0.0175) since the
    detail band leaves the target's strong edges out (before: 2 of 16, 0.0264 / -0.0180; the
    third is frame 48, target 0.060, at the threshold: swap 0.051 before, 0.048 after); 4 of
    16 (-0.022) with the 68-point map's jaw before its refit (issue 20), 12 of 16 with the v2
    teacher."""
    frames = [f for b in media.read_frames(EXAMPLES_DIR / "clip.mp4", 30) for f in b][::6]
    swapper = load_swapper("quality", "cpu")
    identity = load_source_identity(EXAMPLES_DIR / "grace_hopper.jpg", analyser, 256)
    opened = closed = 0
    errors = []
    for frame in frames:
        judged, driving = analyser_dlib.detect(frame), analyser.detect(frame)
        if not judged or not driving:
            continue
        judged = max(judged, key=lambda f: f.area)
        want = expression.mouth_opening(judged.landmarks)
        if want <= expression.MOUTH_OPEN:
            continue
        (out,) = swap_frames([frame], [[max(driving, key=lambda f: f.area)]], swapper, identity)
        got = expression.mouth_opening(_landmarks_again(analyser_dlib, out, judged))
        opened += 1
        closed += got <= expression.MOUTH_OPEN
        errors.append(abs(got - want))
    assert opened >= 12, opened
    assert closed <= 3, (closed, opened)
    assert np.mean(errors) <= 0.03, np.mean(errors)
