"""The crop-level gauge's glasses leak on real faces: a paste of the guide lets a source's
glasses through, a generator that ignores the guide does not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slimswap.evaluate.crop_eval import score_generator
from slimswap.train.swap_data import SwapDataset, upload


@pytest.fixture(scope="module")
def faces() -> SwapDataset:
    from helpers import aligned_bundled_faces

    from slimswap.face.analyser import FaceAnalyser

    crops, embs, lms, labels = aligned_bundled_faces(FaceAnalyser(), 128, clip_step=40)
    lms = ((lms + 0.5) / 128).astype(np.float32)
    native = np.zeros(len(labels), bool)
    return SwapDataset(upload(crops, 128, torch.device("cpu")), lms, embs, labels, native)


def _recognizer(x: torch.Tensor) -> torch.Tensor:
    """A stand-in recognizer (the leak does not read it): the mean colour per quadrant."""
    return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)


def _idnet(x: torch.Tensor) -> torch.Tensor:
    return torch.zeros(len(x), 128)


class _IgnoresGuide(torch.nn.Module):
    """Returns the target: nothing of the source, glasses included, can come through."""

    def forward(self, target, guide, embedding):
        return target


def test_glasses_leak_is_high_for_the_warp_paste_and_zero_without_the_guide(faces):
    scores = score_generator(_IgnoresGuide(), faces, _recognizer, _idnet, 6, 2, batch=3)
    # the paste copies the guide inside the face region: most of the frames' contrast
    # (some rims fall outside the region, the temples always do)
    assert scores["base"].glasses_leak > 0.6
    assert scores["generator"].glasses_leak == pytest.approx(0.0, abs=1e-6)
