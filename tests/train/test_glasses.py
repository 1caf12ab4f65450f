"""Synthetic glasses on real aligned faces: rims round the eyes, the rest of the face untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slimswap.train.glasses import draw_glasses

SIZE = 128


@pytest.fixture(scope="module")
def faces():
    from helpers import aligned_bundled_faces

    from slimswap.face.analyser import FaceAnalyser

    crops, _, lms, _ = aligned_bundled_faces(FaceAnalyser(), SIZE, clip_step=40)
    img = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    return img, torch.from_numpy(((lms + 0.5) / SIZE).astype(np.float32))


def test_glasses_frame_the_eyes_and_leave_mouth_and_pupils(faces):
    img, lmk = faces
    out = draw_glasses(img, lmk, torch.Generator().manual_seed(3))
    assert out.shape == img.shape and out.min() >= -1 and out.max() <= 1
    change = (out - img).abs().amax(1)  # (N, S, S)
    px = lmk * SIZE - 0.5
    for i in range(len(img)):
        # the mouth (its points' box and a margin) is not touched
        m0, m1 = px[i, 48:68].amin(0).long() - 2, px[i, 48:68].amax(0).long() + 2
        assert float(change[i, m0[1] : m1[1], m0[0] : m1[0]].max()) == 0.0
        for eye in (slice(36, 42), slice(42, 48)):
            cx, cy = px[i, eye].mean(0).round().long().tolist()
            # the pupil stays visible: at most a light lens tint (alpha <= 0.25)
            assert float(change[i, cy, cx]) <= 0.5
            # a rim crosses the eye's row on each side within half an eye distance
            dist = float((px[i, 42:48].mean(0) - px[i, 36:42].mean(0)).norm())
            reach = int(0.6 * dist)
            row = change[i, cy]
            assert float(row[max(cx - reach, 0) : cx].max()) > 0.3
            assert float(row[cx + 1 : cx + reach].max()) > 0.3


def test_glasses_follow_the_seed_and_vary_between_faces(faces):
    img, lmk = faces
    a = draw_glasses(img, lmk, torch.Generator().manual_seed(0))
    b = draw_glasses(img, lmk, torch.Generator().manual_seed(0))
    c = draw_glasses(img, lmk, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
