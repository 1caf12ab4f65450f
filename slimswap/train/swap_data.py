"""Training pairs for the warp-guided generator, held on the device.

One table at the generator's resolution (256 px by default) built from the shards: a face
with a native crop at that size (`train_256.npz`: CelebA photos and video frames large
enough) uses it; every other face (LFW's ~110 px faces) is its 128 px crop upsampled once on
the device. Kept beside each face: landmarks in crop units, the face-region mask the warp
fills, the dlib descriptor, the identity label and a `native` flag, so a step can draw
targets from the sharp faces more often than their share. Shards that carry MediaPipe's
mapped landmarks too (train/build_analysis.py) give a second set, with its own masks: a pair
drawn "by the mesh" warps and masks by those, as the product does by default, so the
generator learns the lower face from the points it will be driven by.

Pairs come in two kinds (`pair_sources`): a random other face (a swap: judged by identity,
realism and lighting) or another photo/frame of the *same* person (a supervised
reconstruction: warp(A onto B's landmarks) + B's context should give B). A person with a
single photo is paired with the mirror image of that photo, which differs in every
asymmetric detail but has the same identity.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from slimswap.face.warp import face_region_mask, opening_mask
from slimswap.train import losses

log = logging.getLogger(__name__)


def _decode_all(shard, threads: int = 16) -> np.ndarray:
    """All crops of a shard as (N, S, S, 3) uint8, decoded in threads (OpenCV drops the GIL)."""
    out = np.empty((len(shard), shard.size, shard.size, 3), np.uint8)

    def work(i: int) -> None:
        out[i] = shard.image(i)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(len(shard))))
    return out


class SwapDataset:
    """Faces at one resolution on the device, with what pair sampling and the warp need."""

    def __init__(
        self,
        images: torch.Tensor,
        landmarks: np.ndarray,
        embeddings: np.ndarray,
        labels: np.ndarray,
        native: np.ndarray,
        openings: bool = False,
        video: np.ndarray | None = None,
        mesh_landmarks: np.ndarray | None = None,
    ) -> None:
        """images (N, 3, S, S) uint8 on the device; landmarks (N, 68, 2) in crop units;
        native (N,) bool: the crop was cut at S from the photo (not upsampled); openings: the
        regions leave out the target's mouth and eye openings (the generator's
        `target_openings`); video (N,) bool: the face is a frame of a talking-head clip;
        mesh_landmarks (N, 68, 2): MediaPipe's mapped points in crop units, NaN rows where
        the mesh found none (those faces keep dlib's)."""
        self.images = images
        self.device = device = images.device
        self.size = size = images.shape[-1]
        self.landmarks = torch.from_numpy(landmarks.astype(np.float32)).to(device)
        self.regions, self.opening_masks = _masks(landmarks, size, device)
        self.mesh_landmarks = self.has_mesh = None
        if mesh_landmarks is not None:
            mesh = np.asarray(mesh_landmarks, np.float32)
            has = np.isfinite(mesh).all(axis=(1, 2))
            mesh = np.where(has[:, None, None], mesh, landmarks.astype(np.float32))
            self.mesh_landmarks = torch.from_numpy(mesh).to(device)
            self.has_mesh = torch.from_numpy(has).to(device)
            self.mesh_regions, self.mesh_opening_masks = _masks(mesh, size, device)
        self.openings = openings  # batch() cuts the openings out of the region (a model's flag)
        self.embeddings = torch.from_numpy(embeddings.astype(np.float32)).to(device)
        self.labels = torch.from_numpy(labels.astype(np.int64)).to(device)
        self.native = torch.from_numpy(native.astype(bool)).to(device)
        self.native_index = torch.nonzero(self.native).flatten()
        video = np.zeros(len(labels), bool) if video is None else np.asarray(video, bool)
        self.video = torch.from_numpy(video).to(device)
        self.video_index = torch.nonzero(self.video).flatten()
        # same-identity sampling: faces sorted by label; each face's group start, size and slot
        self.order = torch.argsort(self.labels, stable=True)
        counts = torch.bincount(self.labels)
        starts = torch.cumsum(counts, 0) - counts
        self.group_start, self.group_size = starts[self.labels], counts[self.labels]
        self.slot = torch.empty_like(self.order)
        self.slot[self.order] = (
            torch.arange(len(self.order), device=device) - self.group_start[self.order]
        )
        self.mirror = losses.mirror_permutation(self.landmarks.mean(0))

    def __len__(self) -> int:
        return self.images.shape[0]

    def sample_targets(
        self, n: int, native_share: float, gen: torch.Generator, video_share: float = 0.0
    ) -> torch.Tensor:
        """n face indices: a `native_share` of them from the faces with a native crop, then a
        `video_share` from clip frames (where a same-person pair differs in expression)."""
        idx = torch.randint(0, len(self), (n,), device=self.device, generator=gen)
        for pool, share in ((self.native_index, native_share), (self.video_index, video_share)):
            if len(pool) and share > 0:
                pick = torch.randint(0, len(pool), (n,), device=self.device, generator=gen)
                use = torch.rand(n, device=self.device, generator=gen) < share
                idx = torch.where(use, pool[pick], idx)
        return idx

    def same_person(self, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Another face of each index's identity, uniformly (itself for a one-photo identity)."""
        size = self.group_size[idx]
        r = torch.rand(idx.shape[0], device=self.device, generator=gen)
        step = 1 + (r * (size - 1)).long().clamp(max=(size - 2).clamp(min=0))
        other = self.order[self.group_start[idx] + (self.slot[idx] + step) % size]
        return torch.where(size > 1, other, idx)

    def batch(
        self, idx: torch.Tensor, flip: torch.Tensor, mesh: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(images in [-1,1], landmarks in crop units, regions in [0,1]), mirrored where flip;
        landmarks and regions from MediaPipe's mesh where `mesh` (and the face has them)."""
        img = self.images[idx].float().div_(127.5).sub_(1)
        lmk = self.landmarks[idx].clone()
        region, opening = self.regions[idx], self.opening_masks[idx]
        if mesh is not None and self.mesh_landmarks is not None:
            use = mesh & self.has_mesh[idx]
            lmk = torch.where(use[:, None, None], self.mesh_landmarks[idx], lmk)
            region = torch.where(use[:, None, None, None], self.mesh_regions[idx], region)
            opening = torch.where(use[:, None, None, None], self.mesh_opening_masks[idx], opening)
        region = region.float().div_(255)
        if self.openings:
            region *= 1 - opening.float().div_(255)
        if flip.any():
            img[flip] = img[flip].flip(-1)
            region[flip] = region[flip].flip(-1)
            fl = lmk[flip][:, self.mirror]
            fl[..., 0] = 1 - fl[..., 0]
            lmk[flip] = fl
        return img, lmk, region


def _masks(landmarks: np.ndarray, size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Face-region and opening masks (N, 1, S, S) uint8 on the device, from crop-unit points."""
    px = landmarks.astype(np.float32) * size - 0.5

    def as_uint8(masks: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy((np.stack(masks) * 255).round().astype(np.uint8)).to(device)

    with ThreadPoolExecutor(16) as pool:
        regions = as_uint8(list(pool.map(lambda lm: face_region_mask(lm, size), px)))
        openings = as_uint8(list(pool.map(lambda lm: opening_mask(lm, size), px)))
    return regions[:, None], openings[:, None]


def jitter_source(img: torch.Tensor, gen: torch.Generator, blur_share: float = 0.3) -> torch.Tensor:
    """Colour and sharpness jitter of source faces: users bring any photo, soft or tinted."""
    n = img.shape[0]
    dev = img.device
    gain = 1 + 0.16 * (torch.rand(n, 3, 1, 1, device=dev, generator=gen) - 0.5)
    bias = 0.16 * (torch.rand(n, 1, 1, 1, device=dev, generator=gen) - 0.5)
    img = (img * gain + bias).clamp(-1, 1)
    soft = torch.rand(n, device=dev, generator=gen) < blur_share
    if soft.any():
        s = img.shape[-1]
        side = int(s * (0.3 + 0.6 * float(torch.rand(1, device=dev, generator=gen))))
        low = F.interpolate(
            img[soft], size=(side, side), mode="bilinear", antialias=True, align_corners=False
        )
        img[soft] = F.interpolate(low, size=(s, s), mode="bilinear", align_corners=False)
    return img


def upload(images: np.ndarray, size: int, device: torch.device) -> torch.Tensor:
    """(N, s, s, 3) uint8 -> (N, 3, size, size) uint8 on the device (bicubic where s != size)."""
    chunks = []
    for i in range(0, len(images), 512):
        x = torch.from_numpy(np.ascontiguousarray(images[i : i + 512])).to(device)
        x = x.permute(0, 3, 1, 2)
        if x.shape[-1] != size:
            x = F.interpolate(x.float(), size=(size, size), mode="bicubic", align_corners=False)
            x = x.round().clamp(0, 255).to(torch.uint8)
        chunks.append(x.contiguous())
    return torch.cat(chunks)


def is_video_frame(source: str) -> bool:
    """A face from `data build --videos` (its frames live under video_frames/)."""
    return "video_frames" in Path(source).parts


def load_swap_dataset(
    paths: list[str | Path],
    size: int,
    device: torch.device,
    openings: bool = False,
    mesh: bool = False,
) -> SwapDataset:
    """Merge shards (any crop sizes) into one table at `size`, preferring native crops.

    Each source photo appears once: from the shard whose crop size is `size` when it has
    one, else from the largest crop, upsampled. openings: see `SwapDataset`. mesh: keep
    MediaPipe's landmarks (and draw their masks) where the shards have them, for a recipe
    that draws pairs by them.
    """
    from slimswap.train.shards import load_shard

    shards = [load_shard(p) for p in paths if Path(p).is_file()]
    if not shards:
        raise FileNotFoundError(f"none of the training shards exist: {paths}")
    best: dict[str, int] = {}  # source photo -> shard index
    for si, sh in enumerate(shards):
        for src in sh.sources.tolist():
            prev = best.get(src)
            if prev is None or (shards[prev].size != size and sh.size > shards[prev].size):
                best[src] = si
    names = sorted({str(sh.identities[lab]) for sh in shards for lab in np.unique(sh.labels)})
    label_of = {n: i for i, n in enumerate(names)}
    images, lmks, meshes, embs, labels, native, video = [], [], [], [], [], [], []
    for si, sh in enumerate(shards):
        take = np.array([r for r, src in enumerate(sh.sources.tolist()) if best[src] == si], int)
        if not len(take):
            continue
        images.append(upload(_decode_all(sh)[take], size, device))
        lmks.append((sh.landmarks[take].astype(np.float32) + 0.5) / sh.size)
        points = sh.mesh_landmarks
        meshes.append(
            np.full((len(take), 68, 2), np.nan, np.float32)
            if points is None
            else (points[take].astype(np.float32) + 0.5) / sh.size
        )
        embs.append(sh.embeddings[take].astype(np.float32))
        labels.append(np.array([label_of[str(sh.identities[sh.labels[r]])] for r in take]))
        native.append(np.full(len(take), sh.size == size))
        video.append(np.array([is_video_frame(str(sh.sources[r])) for r in take], bool))
        log.info("%d faces from the %d px shard", len(take), sh.size)
    any_mesh = mesh and any(sh.mesh_landmarks is not None for sh in shards)
    return SwapDataset(
        torch.cat(images),
        np.concatenate(lmks),
        np.concatenate(embs),
        np.concatenate(labels),
        np.concatenate(native),
        openings=openings,
        video=np.concatenate(video),
        mesh_landmarks=np.concatenate(meshes) if any_mesh else None,
    )
