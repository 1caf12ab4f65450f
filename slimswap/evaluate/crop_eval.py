"""Crop-level scores of a warp-guided generator on held-out faces, batched on any device.

The native-size, full-pipeline evaluation (`swap_eval`) is what judges a release; this is
the quick gauge for training runs and A/B ablations, cheap enough to run on the GPU machine
inside a training call: identity by the evaluation-only recognizer (cosine to source and
target, retrieval top-1 among the held-out identities) and by dlib's network, inner-face
sharpness against the target, same-person reconstruction PSNR in the face region, and how
much of a source's glasses come through (synthetic frames drawn on the sources: the share of
their contrast in the guide that reaches the swap; 0 leaves them out, the warp paste ~1).
The plain warp paste (the generator's starting point, `base`) is scored alongside.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from slimswap.face.warp import guide_inputs
from slimswap.train.glasses import draw_glasses
from slimswap.train.swap_data import SwapDataset

INNER = slice(17, 68)  # brows, nose, eyes, mouth


@dataclass
class CropScores:
    cos_source: float
    cos_target: float
    top1_source: float
    top1_target: float
    dlib_to_source: float
    dlib_share_below_0_6: float
    sharpness_ratio: float
    reconstruction_psnr: float
    glasses_leak: float


def laplacian_energy(img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |Laplacian| of the grey image inside mask, per sample ((N,3,S,S) in [-1,1])."""
    grey = img.float().mean(1, keepdim=True)
    kernel = torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=grey.dtype, device=grey.device)
    lap = F.conv2d(grey, kernel.view(1, 1, 3, 3), padding=1).abs()
    return (lap * mask).sum(dim=(1, 2, 3)) / mask.sum(dim=(1, 2, 3)).clamp(min=1)


def inner_face_mask(landmarks: torch.Tensor, size: int) -> torch.Tensor:
    """(N,1,S,S) hard mask of the convex hull of the inner-face landmarks (crop units)."""
    import cv2

    out = np.zeros((landmarks.shape[0], 1, size, size), np.float32)
    for i, lm in enumerate(landmarks[:, INNER].cpu().numpy() * size):
        cv2.fillConvexPoly(out[i, 0], cv2.convexHull(np.round(lm).astype(np.int32)), 1.0)
    return torch.from_numpy(out).to(landmarks.device)


def pairs_for(
    ds: SwapDataset, n_cross: int, n_same: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (source, target) pairs: n_cross of different people, n_same of one person."""
    rng = np.random.default_rng(seed)
    labels = ds.labels.cpu().numpy()
    cross: list[tuple[int, int]] = []
    while len(cross) < n_cross:
        s, t = rng.integers(0, len(labels), 2)
        if labels[s] != labels[t]:
            cross.append((int(s), int(t)))
    multi = [np.flatnonzero(labels == lab) for lab in np.unique(labels)]
    multi = [m for m in multi if len(m) > 1]
    same = []
    for _ in range(n_same):
        m = multi[rng.integers(len(multi))]
        s, t = rng.choice(m, 2, replace=False)
        same.append((int(s), int(t)))
    return np.array(cross), np.array(same)


def _swaps(
    generator, target: torch.Tensor, guide: torch.Tensor, embedding: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The plain warp paste (`base`) and, given a generator, its swap, for one guide."""
    region = guide[:, 3:4]
    out = {"base": region * guide[:, :3] + (1 - region) * target}
    if generator is not None:
        out["generator"] = generator(target, guide, embedding).float().clamp(-1, 1)
    return out


@torch.no_grad()
def score_generator(
    generator,
    ds: SwapDataset,
    recognizer,
    idnet,
    n_cross: int = 300,
    n_same: int = 100,
    batch: int = 50,
    seed: int = 0,
) -> dict[str, CropScores]:
    """Scores of `generator` (None: only the plain warp paste) and of the warp paste itself."""
    dev = ds.device
    # the guide as this generator's swapper builds it (with or without the target's openings)
    ds.openings = bool(getattr(getattr(generator, "config", None), "target_openings", False))
    cross, same = pairs_for(ds, n_cross, n_same, seed)
    no_flip = torch.zeros(batch, dtype=torch.bool, device=dev)

    def rec(x: torch.Tensor) -> torch.Tensor:
        return recognizer(x.float())

    # gallery: mean recognizer embedding per held-out identity (the quick gauge keeps the
    # pair's own photos in it; the native-size evaluation leaves them out)
    chunks = []
    for i in range(0, len(ds), 256):
        idx = torch.arange(i, min(i + 256, len(ds)), device=dev)
        chunks.append(rec(ds.batch(idx, torch.zeros_like(idx, dtype=torch.bool))[0]))
    all_emb = torch.cat(chunks)
    labels = ds.labels
    n_id = int(labels.max()) + 1
    gallery = F.normalize(
        torch.zeros(n_id, all_emb.shape[1], device=dev).index_add_(0, labels, all_emb), dim=1
    )

    outputs = {"base": [], "generator": []} if generator is not None else {"base": []}
    for kind, pairs in (("cross", cross), ("same", same)):
        for i in range(0, len(pairs), batch):
            p = torch.from_numpy(pairs[i : i + batch]).to(dev)
            f = no_flip[: len(p)]
            src, lmk_s, _ = ds.batch(p[:, 0], f)
            tgt, lmk_t, region = ds.batch(p[:, 1], f)
            guide = guide_inputs(src, lmk_s, tgt, lmk_t, region, ds.openings)
            region = guide[:, 3:4]
            emb = ds.embeddings[p[:, 0]]
            results = _swaps(generator, tgt, guide, emb)
            if kind == "cross":  # the same pairs with glasses drawn on their sources
                worn = draw_glasses(src, lmk_s, torch.Generator(dev).manual_seed(seed + i))
                guide_g = guide_inputs(worn, lmk_s, tgt, lmk_t, region, ds.openings)
                in_guide = (guide_g[:, :3] - guide[:, :3]).abs().mean(1, keepdim=True)
                rims = (in_guide > 0.2).float()  # the frames' pixels, warped onto the target
                with_glasses = _swaps(generator, tgt, guide_g, emb)
            inner = inner_face_mask(lmk_t, ds.size)
            for name, out in results.items():
                leak = torch.full((len(p),), float("nan"), device=dev)
                if kind == "cross":
                    through = (with_glasses[name] - out).abs().mean(1, keepdim=True)
                    leak = (through * rims).sum(dim=(1, 2, 3)) / (in_guide * rims).sum(
                        dim=(1, 2, 3)
                    ).clamp(min=1e-6)
                outputs[name].append(
                    {
                        "kind": kind,
                        "src": p[:, 0],
                        "tgt": p[:, 1],
                        "out": out.cpu(),
                        "emb": rec(out),
                        "dlib": idnet((out + 1) * 0.5),
                        "sharp": laplacian_energy(out, inner)
                        / laplacian_energy(tgt, inner).clamp(min=1e-6),
                        "mse": ((out - tgt).square().mean(1, keepdim=True) * region).sum(
                            dim=(1, 2, 3)
                        )
                        / region.sum(dim=(1, 2, 3)).clamp(min=1),
                        "leak": leak,
                    }
                )
    scores = {}
    for name, rows in outputs.items():
        cr = [r for r in rows if r["kind"] == "cross"]
        sm = [r for r in rows if r["kind"] == "same"]
        emb = torch.cat([r["emb"] for r in cr])
        src = torch.cat([r["src"] for r in cr])
        tgt = torch.cat([r["tgt"] for r in cr])
        dl = torch.cat([r["dlib"] for r in cr])
        src_emb = F.normalize(all_emb[src], dim=1)
        tgt_emb = F.normalize(all_emb[tgt], dim=1)
        top1 = (emb @ gallery.T).argmax(1)
        dist = (dl.float() - ds.embeddings[src]).norm(dim=1)
        mse = torch.cat([r["mse"] for r in sm]).clamp(min=1e-10)
        scores[name] = CropScores(
            cos_source=float((emb * src_emb).sum(1).mean()),
            cos_target=float((emb * tgt_emb).sum(1).mean()),
            top1_source=float((top1 == labels[src]).float().mean()),
            top1_target=float((top1 == labels[tgt]).float().mean()),
            dlib_to_source=float(dist.mean()),
            dlib_share_below_0_6=float((dist < 0.6).float().mean()),
            sharpness_ratio=float(torch.cat([r["sharp"] for r in cr]).mean()),
            # images span [-1, 1]: peak-to-peak 2, so PSNR = 10 log10(4 / mse)
            reconstruction_psnr=float((10 * torch.log10(4 / mse)).mean()),
            glasses_leak=float(torch.cat([r["leak"] for r in cr]).mean()),
        )
    return scores
