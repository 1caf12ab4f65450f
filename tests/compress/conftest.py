"""Real faces for the compression tests: the bundled photos and clip frames, aligned, with
landmarks, dlib descriptors and warp guides built the way training and inference build them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slimswap.swap.neural import to_model_input


@pytest.fixture(scope="session")
def bundled_faces(analyser):
    """(crops uint8 (N,256,256,3), descriptors (N,128), landmarks (N,68,2) in crop pixels,
    identity labels (N,)) of the two example photos and every 20th clip frame."""
    from helpers import aligned_bundled_faces

    crops, embs, lms, labels = aligned_bundled_faces(analyser, 256)
    return crops, embs, lms.astype(np.float32), labels


def swap_dataset(bundled_faces, size: int):
    """The bundled faces as a training-style SwapDataset at `size` px (tiny test models)."""
    from slimswap.train.swap_data import SwapDataset, upload

    crops, embs, lms, labels = bundled_faces
    units = (lms + 0.5) / crops.shape[1]
    native = np.zeros(len(labels), bool)
    return SwapDataset(upload(crops, size, torch.device("cpu")), units, embs, labels, native)


@pytest.fixture(scope="session")
def tiny_batches(bundled_faces):
    """Two FaceBatches (swap + same-person pairs) of the bundled faces at 64 px."""
    from slimswap.compress.data import batches_from

    return batches_from(swap_dataset(bundled_faces, 64), 2, 4)


@pytest.fixture(scope="session")
def guided_inputs(bundled_faces) -> dict[str, np.ndarray]:
    """Model inputs at 256 px through the inference path (`guide_for_crops`): each face is the
    target of the next one's source crop, landmarks and descriptor."""
    from slimswap.face.warp import guide_for_crops

    crops, embs, lms, _ = bundled_faces
    target = to_model_input(torch.from_numpy(crops))
    guides = []
    for i in range(len(crops)):
        j = (i + 1) % len(crops)
        source = to_model_input(torch.from_numpy(crops[j : j + 1]))
        guides.append(guide_for_crops(target[i : i + 1], lms[i : i + 1], source, lms[j]))
    return {
        "target": target.numpy(),
        "guide": torch.cat(guides).numpy(),
        "identity": np.roll(embs, -1, axis=0),
    }
