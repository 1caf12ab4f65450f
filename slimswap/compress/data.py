"""Real-face batches for the compression tools (saliency, pruning fine-tune, calibration)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from slimswap.swap.neural import to_model_input


def real_arrays(
    shard_path: str | Path, n: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(crops uint8 NHWC, own dlib descriptors, other identities' descriptors) for n faces."""
    from slimswap.train.shards import load_shard

    shard = load_shard(shard_path)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(shard), size=min(n, len(shard)), replace=False)
    crops = shard.decode(idx)
    own = shard.embeddings[idx].astype(np.float32)
    other = own[np.roll(np.arange(len(idx)), 1)]  # a different face's identity for each crop
    return crops, own, other


def real_batches(
    shard_path: str | Path, n_batches: int, batch: int, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """[(target in [-1,1], other identity, own identity)] tensors, for swap and self-swap losses."""
    crops, own, other = real_arrays(shard_path, n_batches * batch, seed)
    x = to_model_input(torch.from_numpy(crops))
    return [
        (
            x[i : i + batch],
            torch.from_numpy(other[i : i + batch]),
            torch.from_numpy(own[i : i + batch]),
        )
        for i in range(0, len(x), batch)
    ]
