"""Loss terms of the swap generator, each a small pure function of tensors.

Images are in [-1, 1]; identities are raw dlib descriptors (not normalised).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def identity_loss(swap_embedding: torch.Tensor, source_embedding: torch.Tensor) -> torch.Tensor:
    """1 - cosine between the swap's identity and the source's (0 when identical)."""
    return (1 - F.cosine_similarity(swap_embedding.float(), source_embedding.float(), dim=1)).mean()


def hinge_d_loss(real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor]) -> torch.Tensor:
    loss = 0.0
    for r, f in zip(real_logits, fake_logits):
        loss = loss + F.relu(1 - r.float()).mean() + F.relu(1 + f.float()).mean()
    return loss / len(real_logits)


def hinge_g_loss(fake_logits: list[torch.Tensor]) -> torch.Tensor:
    return sum(-f.float().mean() for f in fake_logits) / len(fake_logits)


def feature_matching_loss(
    fake_feats: list[list[torch.Tensor]], real_feats: list[list[torch.Tensor]], last: int = 1
) -> torch.Tensor:
    """L1 between discriminator activations of swap and target, on the last `last` layers only.

    Matching early (high-resolution) layers pulls the swap back to a copy of the target.
    """
    loss, n = 0.0, 0
    for fs, rs in zip(fake_feats, real_feats):
        for f, r in zip(fs[-last:], rs[-last:]):
            loss = loss + F.l1_loss(f.float(), r.detach().float())
            n += 1
    return loss / max(n, 1)


def lighting_loss(swap: torch.Tensor, target: torch.Tensor, cells: int = 8) -> torch.Tensor:
    """Low-frequency colour of the swap must match the target's (no colour casts)."""
    return F.l1_loss(
        F.adaptive_avg_pool2d(swap.float(), cells), F.adaptive_avg_pool2d(target.float(), cells)
    )


def landmark_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute landmark error in units of the crop side."""
    return (pred.float() - target.float()).abs().mean()


def masked_mean(per_sample: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of per-sample losses over the samples where mask is true (0 if none)."""
    mask = mask.float()
    return (per_sample * mask).sum() / mask.sum().clamp(min=1)


def mirror_permutation(mean_landmarks: torch.Tensor) -> torch.Tensor:
    """Index map taking landmark i to its mirror image's index, derived from a mean shape.

    For each point, the mirrored position (1 - x, y) is matched to the nearest point of the
    mean shape; for the symmetric 68-point layout that is exactly the left/right swap.
    """
    mirrored = mean_landmarks.clone()
    mirrored[:, 0] = 1 - mirrored[:, 0]
    return torch.cdist(mirrored, mean_landmarks).argmin(dim=1)


def identity_features(
    idnet: torch.nn.Module, crops01: torch.Tensor, taps: tuple[int, ...] = (2, 6, 9)
) -> list[torch.Tensor]:
    """Intermediate activations of the identity ResNet: the perceptual-loss feature space.

    A face-recognition network's mid-level features describe facial structure rather than
    generic texture, which is what self-swap reconstruction should preserve.
    """
    from slimswap.nets.identity import CHIP_SIZE, INPUT_SCALE

    x = F.interpolate(crops01, size=(CHIP_SIZE, CHIP_SIZE), mode="bilinear", align_corners=False)
    mean = idnet.input_mean.to(x.dtype).view(1, 3, 1, 1)
    x = idnet.stem((x * 255.0 - mean) / INPUT_SCALE)
    feats = []
    for i, unit in enumerate(idnet.units):
        x = unit(x)
        if i in taps:
            feats.append(x)
        if i >= max(taps):
            break
    return feats
