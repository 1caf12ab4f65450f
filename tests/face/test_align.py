"""Alignment and its inverse: a crop pasted back lands where it was cut out."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from slimswap.face.align import (
    align,
    estimate_affine,
    invert_affine,
    template,
    transform_points,
)
from slimswap.face.blend import paste_back
from slimswap.face.mask import area_mask


def test_estimate_affine_of_template_is_identity():
    affine = estimate_affine(template(128), 128)
    np.testing.assert_allclose(affine, [[1, 0, 0], [0, 1, 0]], atol=1e-9)


def test_estimate_affine_recovers_a_known_similarity():
    angle, scale, shift = np.deg2rad(20), 1.7, np.array([40.0, -12.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    frame_points = template(128) @ rot.T + shift  # the template seen rotated, scaled, moved
    affine = estimate_affine(frame_points, 128)
    np.testing.assert_allclose(transform_points(frame_points, affine), template(128), atol=1e-9)
    np.testing.assert_allclose(affine[:, :2], np.linalg.inv(rot), atol=1e-9)


def test_transform_points_round_trips_through_invert_affine():
    rng = np.random.default_rng(0)
    kps = template(256) * 1.3 + np.array([100.0, 60.0]) + rng.normal(0, 3, (5, 2))
    affine = estimate_affine(kps, 256)
    points = rng.uniform(-50, 600, (100, 2))
    back = transform_points(transform_points(points, affine), invert_affine(affine))
    np.testing.assert_allclose(back, points, atol=1e-9)


@pytest.mark.shared
def test_paste_back_inverts_align(shared_data, analyser, load_rgb):
    # an LFW photo whose face is about as large as the crop: the round trip then costs only
    # two bilinear resamplings, not a downscale
    frame = load_rgb(shared_data / "lfw_deepfunneled/George_W_Bush/George_W_Bush_0001.jpg")
    face = analyser.detect(frame)[0]
    crop, affine = align(frame, face.kps, 128)
    assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8

    pasted = paste_back(frame, crop, affine, np.ones((128, 128), np.float32))
    face_area = area_mask(transform_points(face.landmarks, affine), 128)
    in_frame = cv2.warpAffine(face_area, invert_affine(affine), frame.shape[1::-1]) > 0.99
    assert in_frame.sum() > 3000  # the comparison really covers the face
    error = np.abs(pasted.astype(int) - frame.astype(int)).max(-1)[in_frame]
    assert error.mean() < 2.5
    assert np.percentile(error, 99) < 12

    # and the landmarks, carried into the crop and back, land where they started
    back = transform_points(transform_points(face.landmarks, affine), invert_affine(affine))
    np.testing.assert_allclose(back, face.landmarks, atol=1e-3)
