"""Region masks from the face mesh cover what they name, checked against dlib's independent
68 points on a real smiling face (open mouth, teeth showing)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from slimswap.errors import UserError
from slimswap.face.align import align, transform_points
from slimswap.face.mask import REGIONS, region_mask, region_parts
from slimswap.face.select import iou
from slimswap.pipeline import SwapOptions, face_mask

SIZE = 256
pytestmark = pytest.mark.shared


def _polygon(points: np.ndarray, size: int = SIZE) -> np.ndarray:
    out = np.zeros((size, size), np.uint8)
    cv2.fillPoly(out, [np.round(points).astype(np.int32)], 1)
    return out.astype(bool)


def _dilate(mask: np.ndarray, px: int) -> np.ndarray:
    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * px + 1, 2 * px + 1), np.uint8)).astype(
        bool
    )


@pytest.fixture(scope="module")
def smile(shared_data, load_rgb, analyser_mp, analyser_dlib):
    """(crop, mesh in crop, dlib's 68 in crop) of a face laughing with its teeth showing."""
    frame = load_rgb(shared_data / "deepface_testset/id03/img50.jpg")
    (face,) = analyser_mp.detect(frame)
    (ref,) = analyser_dlib.detect(frame)
    assert iou(face.bbox, ref.bbox) > 0.5
    crop, affine = align(frame, face.kps, SIZE)
    return crop, transform_points(face.mesh[:, :2], affine), transform_points(ref.landmarks, affine)


def test_regions_partition_the_face_oval(smile):
    _, mesh, _ = smile
    parts = region_parts(mesh, SIZE)
    assert set(parts) == set(REGIONS)
    stack = np.stack([parts[r] for r in REGIONS])
    assert stack.sum(0).max() == 1.0  # no pixel in two regions
    assert all(parts[r].sum() > 20 for r in REGIONS)  # each region is really there


def test_lips_lie_inside_dlibs_mouth_outline(smile):
    """The lips mask (outer minus inner lip line) sits inside dlib's outer lip polygon
    (48-59, 2 px of slack at 256 px for the two models' different lines), and the lips region
    covers most of dlib's lips (measured 64 %; the mesh draws the inner line lower)."""
    _, mesh, lm = smile
    lips = region_mask(mesh, SIZE, ("lips",)) > 0.5
    outer = _polygon(lm[48:60])
    dlib_lips = outer & ~_polygon(lm[60:68])
    assert lips.sum() > 100
    assert (lips & ~_dilate(outer, 2)).sum() <= 0.03 * lips.sum()
    hard = region_parts(mesh, SIZE)["lips"] > 0
    assert (hard & dlib_lips).sum() >= 0.55 * dlib_lips.sum()


def test_mouth_inside_is_the_open_mouth_with_its_teeth(smile):
    """Inside dlib's inner lip polygon (60-67, 3 px slack), covering it; and it holds the teeth:
    far less saturated than the (red) lips around them (measured 102 vs 173)."""
    crop, mesh, lm = smile
    inside = region_mask(mesh, SIZE, ("mouth-inside",)) > 0.5
    dlib_inner = _polygon(lm[60:68])
    assert (inside & ~_dilate(dlib_inner, 3)).sum() <= 0.05 * inside.sum()
    parts = region_parts(mesh, SIZE)
    assert ((parts["mouth-inside"] > 0) & dlib_inner).sum() >= 0.9 * dlib_inner.sum()
    saturation = cv2.cvtColor(crop, cv2.COLOR_RGB2HSV)[..., 1].astype(np.float32)
    assert saturation[parts["mouth-inside"] > 0].mean() < saturation[parts["lips"] > 0].mean() - 40


def test_eyes_and_brows_cover_dlibs_eye_and_brow_points(smile):
    _, mesh, lm = smile
    parts = region_parts(mesh, SIZE)
    eyes, brows = _dilate(parts["eyes"] > 0, 2), _dilate(parts["brows"] > 0, 3)
    for x, y in np.round(lm[36:48]).astype(int):
        assert eyes[y, x]
    inside_brows = [brows[y, x] for x, y in np.round(lm[17:27]).astype(int)]
    assert np.mean(inside_brows) >= 0.8
    assert not (parts["eyes"] * parts["brows"]).any()


def test_default_regions_let_the_targets_teeth_show_through(smile):
    """--mask box,area,region with the default regions: swapped everywhere on the face but
    the inside of the mouth (Deep-Live-Cam's mouth mask)."""
    _, mesh, lm = smile
    options = SwapOptions(masks=("box", "area", "region"))
    options.check()
    mask = face_mask(lm, SIZE, options.masks, mesh, options.regions)
    inside = region_parts(mesh, SIZE)["mouth-inside"] > 0
    cheeks = [
        tuple(np.round((lm[2] + lm[30]) / 2).astype(int)),
        tuple(np.round((lm[14] + lm[30]) / 2).astype(int)),
    ]
    assert mask[inside].mean() < 0.1
    assert all(mask[y, x] > 0.95 for x, y in cheeks)
    with_mouth = face_mask(lm, SIZE, options.masks, mesh, (*options.regions, "mouth-inside"))
    assert with_mouth[inside].mean() > 0.8


def test_region_mask_needs_the_mesh():
    with pytest.raises(UserError, match="mediapipe"):
        SwapOptions(masks=("box", "region"), detector="dlib").check()
    with pytest.raises(UserError, match="mask-regions"):
        SwapOptions(masks=("region",), regions=("teeth",)).check()
    with pytest.raises(UserError, match="mesh"):
        face_mask(np.zeros((68, 2), np.float32), 64, ("region",), None)
