"""The thin-plate warp that feeds the generator: geometry on real landmarks."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from slimswap.face.align import align, transform_points
from slimswap.face.warp import CONTROL_POINTS, face_region_mask, match_colour, sampling_grid

SIZE = 256


def crop_landmarks(analyser, frames) -> tuple[np.ndarray, np.ndarray]:
    crops, lms = [], []
    for frame in frames:
        face = max(analyser.detect(frame), key=lambda f: f.area)
        crop, affine = align(frame, face.kps, SIZE)
        crops.append(crop)
        lms.append((transform_points(face.landmarks, affine) + 0.5) / SIZE)
    return np.stack(crops), np.stack(lms).astype(np.float32)


def test_warp_maps_landmarks_onto_landmarks_within_a_pixel(analyser, shared_data, load_rgb):
    paths = sorted((shared_data / "deepface_testset").glob("id0[1-4]/img*.jpg"))[:8]
    _, lms = crop_landmarks(analyser, [load_rgb(p) for p in paths])
    tgt, src = torch.from_numpy(lms[:4]), torch.from_numpy(lms[4:8])
    grid = sampling_grid(tgt, src, SIZE)  # where each target pixel reads the source
    # read the grid at the target's control points: it must point at the source's
    pts = tgt[:, CONTROL_POINTS]
    looked_up = F.grid_sample(
        grid.permute(0, 3, 1, 2), pts[:, :, None] * 2 - 1, align_corners=False
    )
    looked_up = (looked_up[..., 0].permute(0, 2, 1) + 1) / 2
    err_px = ((looked_up - src[:, CONTROL_POINTS]).norm(dim=-1) * SIZE).numpy()
    assert np.median(err_px) < 0.5
    assert np.percentile(err_px, 95) < 1.0
    # a face warped onto itself stays where it is (the identity map)
    same = sampling_grid(tgt, tgt, SIZE)
    c = (torch.arange(SIZE) + 0.5) / SIZE * 2 - 1
    ys, xs = torch.meshgrid(c, c, indexing="ij")
    assert float((same - torch.stack([xs, ys], -1)).abs().max()) * SIZE / 2 < 0.05


def test_match_colour_moves_the_source_tone_to_the_target(shared_data, load_rgb, analyser):
    paths = sorted((shared_data / "deepface_testset").glob("id0[1-2]/img*.jpg"))[:2]
    crops, lms = crop_landmarks(analyser, [load_rgb(p) for p in paths])
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1
    region = torch.from_numpy(face_region_mask(lms[1] * SIZE - 0.5, SIZE))[None, None]
    tinted = (x[:1] * torch.tensor([1.0, 0.7, 0.5]).view(1, 3, 1, 1)).clamp(-1, 1)  # a yellow cast
    fixed = match_colour(tinted, x[1:2], region)

    def mean_in_region(img: torch.Tensor) -> torch.Tensor:
        return (img * region).sum(dim=(2, 3)) / region.sum()

    target_mean = mean_in_region(x[1:2])
    assert float((mean_in_region(fixed) - target_mean).abs().max()) < 0.02
    assert float((mean_in_region(tinted) - target_mean).abs().max()) > 0.1


def test_face_region_covers_the_face_and_not_the_corners():
    lm = np.zeros((68, 2), np.float32)
    t = np.linspace(0, np.pi, 17)
    lm[:17] = np.stack([128 - 90 * np.cos(t), 120 + 110 * np.sin(t)], 1)  # jaw: a U
    lm[17:27] = np.stack([np.linspace(50, 206, 10), np.full(10, 90)], 1)  # brows
    mask = face_region_mask(lm, SIZE)
    assert mask[150, 128] > 0.99  # face centre
    assert mask[5, 5] < 0.01 and mask[250, 250] < 0.01  # crop corners
    assert mask[60, 128] > 0.5  # forehead above the brows is inside (raised brows)
