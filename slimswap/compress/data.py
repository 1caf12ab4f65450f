"""Real-face inputs for the compression tools (saliency, pruning fine-tune, calibration, checks).

Everything a compression step measures is measured on what the generator really sees: aligned
faces from the data shards at the model's resolution, each with a guide built exactly as in
training and inference (another face warped onto the target's landmarks by
`slimswap.face.warp.guide_inputs`, colour-matched, plus the target's face region) and that
face's dlib descriptor. Random tensors would calibrate INT8 ranges and rank channels on
inputs no user ever feeds.

Two kinds of pair (the training's two kinds):
- swap: the source is a face of *another* person; the inputs users feed.
- reconstruction: the source is another photo of the *same* person (the mirror image of the
  same photo for a one-photo identity); the swap should give back the target, which makes a
  loss with a meaningful gradient for Taylor saliency without the identity network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from slimswap.errors import UserError

DEFAULT_FACES = (Path("data/shards/val_128.npz"), Path("data/shards/val_256.npz"))


@dataclass
class FaceBatch:
    """Model inputs (by name) for swap pairs and for same-person reconstruction pairs."""

    swap: dict[str, torch.Tensor]
    recon: dict[str, torch.Tensor]  # recon["target"] is also what the output should be

    def __len__(self) -> int:
        return len(self.swap["target"])


def load_faces(paths: Sequence[str | Path], resolution: int, openings: bool = False):
    """The shards' faces at `resolution` on the CPU (a `SwapDataset`); UserError if none exist.

    openings: regions as a model with `target_openings` sees them."""
    from slimswap.train.swap_data import load_swap_dataset

    present = [Path(p) for p in paths if Path(p).is_file()]
    if not present:
        raise UserError(
            f"no face shard found among {', '.join(map(str, paths))}; "
            "build them with `slimswap data build` or pass --faces"
        )
    return load_swap_dataset(present, resolution, torch.device("cpu"), openings)


def _other_person(labels: torch.Tensor, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A random face of a different identity for each index (itself if only one identity)."""
    n = len(labels)
    other = torch.randint(0, n, idx.shape, generator=gen)
    for _ in range(32):
        same = labels[other] == labels[idx]
        if not same.any():
            break
        other[same] = torch.randint(0, n, (int(same.sum()),), generator=gen)
    return other


@torch.no_grad()
def _pair_inputs(ds, tgt: torch.Tensor, src: torch.Tensor, flip_src: torch.Tensor) -> dict:
    from slimswap.face.warp import guide_inputs

    target, lmk_t, region = ds.batch(tgt, torch.zeros_like(flip_src))
    source, lmk_s, _ = ds.batch(src, flip_src)
    guide = guide_inputs(source, lmk_s, target, lmk_t, region, ds.openings)
    return {"target": target, "guide": guide, "identity": ds.embeddings[src].clone()}


def face_batches(
    paths: Sequence[str | Path],
    n_batches: int,
    batch: int,
    resolution: int = 256,
    seed: int = 0,
    openings: bool = False,
) -> list[FaceBatch]:
    """`n_batches` batches of distinct target faces from shards (fewer if they hold fewer)."""
    return batches_from(load_faces(paths, resolution, openings), n_batches, batch, seed)


def batches_from(ds, n_batches: int, batch: int, seed: int = 0) -> list[FaceBatch]:
    """`n_batches` batches of distinct target faces of a `SwapDataset` (any source of faces:
    the shards, or a few aligned photos in a test)."""
    gen = torch.Generator().manual_seed(seed)
    n = min(n_batches * batch, len(ds))
    tgt = torch.randperm(len(ds), generator=gen)[:n]
    other = _other_person(ds.labels, tgt, gen)
    same = ds.same_person(tgt, gen)
    swap = _pair_inputs(ds, tgt, other, torch.zeros(n, dtype=torch.bool))
    recon = _pair_inputs(ds, tgt, same, same == tgt)
    return [
        FaceBatch(
            {k: v[i : i + batch] for k, v in swap.items()},
            {k: v[i : i + batch] for k, v in recon.items()},
        )
        for i in range(0, n, batch)
    ]


def as_numpy(inputs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.numpy().astype(np.float32) for k, v in inputs.items()}


def face_inputs(
    paths: Sequence[str | Path],
    n: int,
    resolution: int = 256,
    seed: int = 0,
    openings: bool = False,
) -> dict[str, np.ndarray]:
    """Swap-pair model inputs of up to n distinct target faces, as float32 numpy arrays."""
    (b,) = face_batches(paths, 1, n, resolution, seed, openings)
    return as_numpy(b.swap)


def split(inputs: dict[str, np.ndarray], n: int) -> tuple[dict, dict]:
    """(first n rows, the rest) of every input: calibration and check faces never overlap."""
    return {k: v[:n] for k, v in inputs.items()}, {k: v[n:] for k, v in inputs.items()}
