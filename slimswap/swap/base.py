"""The one interface every swapper satisfies.

A swapper works on aligned crops (see slimswap.face.align), never on whole frames: the
pipeline aligns, calls `swap` on a batch, and pastes back. So a GPU swapper sees many crops
per call, and the classic and learned swappers are interchangeable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class SourceIdentity:
    """Who the swapped faces should look like.

    embedding: dlib's 128-D descriptor of the source face (what learned swappers condition on).
    crop: the source face aligned at the swapper's resolution, RGB uint8 (what the classic
    swapper warps). landmarks: the source's 68 landmarks in that crop's pixel coordinates.
    """

    embedding: np.ndarray
    crop: np.ndarray
    landmarks: np.ndarray


@runtime_checkable
class Swapper(Protocol):
    """swap(crops[N,H,W,3] uint8, identity) -> crops[N,H,W,3] uint8, same shape and dtype.

    A swapper returns its swapped crops as they are; masking, colour matching and paste-back
    happen once, in pipeline.swap_frames. One whose output is good only in part of the crop
    (the classic warp) may also define `blend_masks(target_landmarks, size) -> (N, S, S)`
    float masks, which narrow the pipeline's.
    """

    name: str
    resolution: int

    def swap(
        self,
        crops: np.ndarray,
        identity: SourceIdentity,
        target_landmarks: np.ndarray | None = None,
    ) -> np.ndarray:
        """Swap a batch of aligned target crops to `identity`.

        target_landmarks (N, 68, 2), in crop coordinates, is given by the pipeline for
        swappers that need geometry (classic); learned swappers may ignore it.
        """
        ...


class CropSwapper:
    """What the swappers of this package share: `swap` checks the crops once, uint8
    (N, S, S, 3) with S the swapper's resolution (any S where `any_size`: the classic warp
    works at the size the crops come in), and hands them to the swapper's own `_swap`."""

    name: str
    resolution: int
    any_size = False

    def swap(
        self,
        crops: np.ndarray,
        identity: SourceIdentity,
        target_landmarks: np.ndarray | None = None,
    ) -> np.ndarray:
        """Swapped crops, same shape and dtype (Swapper.swap)."""
        crops = np.asarray(crops)
        size = crops.shape[1] if crops.ndim == 4 else -1
        if (
            crops.ndim != 4
            or crops.shape[2:] != (size, 3)
            or crops.dtype != np.uint8
            or not (self.any_size or size == self.resolution)
        ):
            side = "S" if self.any_size else self.resolution
            raise ValueError(
                f"expected uint8 crops (N, {side}, {side}, 3), got {crops.dtype} {crops.shape}"
            )
        return self._swap(crops, identity, target_landmarks)

    def _swap(
        self, crops: np.ndarray, identity: SourceIdentity, target_landmarks: np.ndarray | None
    ) -> np.ndarray:
        raise NotImplementedError
