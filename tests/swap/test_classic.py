"""The classic landmark-warp swapper: geometry, contract, and identity moved on real faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from slimswap.face.align import align, transform_points
from slimswap.face.analyser import embedding_distance
from slimswap.face.mask import area_mask
from slimswap.face.select import iou
from slimswap.pipeline import swap_frames
from slimswap.swap.base import SourceIdentity, Swapper
from slimswap.swap.classic import ClassicSwapper, control_points, delaunay, piecewise_affine_warp

SIZE = 256
# (source, target): 10 pairs of different people from deepface_testset
PAIRS = [
    ("id01/img1.jpg", "id03/img47.jpg"),
    ("id03/img48.jpg", "id02/img3.jpg"),
    ("id04/img13.jpg", "id05/img16.jpg"),
    ("id05/img17.jpg", "id11/img29.jpg"),
    ("id06/img18.jpg", "id12/img35.jpg"),
    ("id07/img20.jpg", "id13/img38.jpg"),
    ("id08/img22.jpg", "id10/img42.jpg"),
    ("id09/img24.jpg", "id06/img19.jpg"),
    ("id10/img44.jpg", "id01/img11.jpg"),
    ("id12/img34.jpg", "id09/img25.jpg"),
]


def _prepared(analyser, frame, size=SIZE):
    """(face with embedding, crop, affine, landmarks in crop coordinates)."""
    face = max(analyser.detect(frame), key=lambda f: f.area)
    face = analyser.embed(frame, face)
    crop, affine = align(frame, face.kps, size)
    return face, crop, affine, transform_points(face.landmarks, affine).astype(np.float32)


def _identity(face, crop, landmarks):
    return SourceIdentity(embedding=face.embedding, crop=crop, landmarks=landmarks)


@pytest.fixture(scope="module")
def pair(shared_data, analyser, load_rgb):
    """One prepared (source, target) pair: the first of PAIRS."""
    data = shared_data / "deepface_testset"
    source, target = (load_rgb(data / p) for p in PAIRS[0])
    return _prepared(analyser, source), (target, *_prepared(analyser, target))


# --- geometry ------------------------------------------------------------------------------


def test_delaunay_covers_the_crop_with_valid_triangles():
    rng = np.random.default_rng(0)
    points = np.concatenate(
        [rng.uniform(20, 100, (30, 2)), [[0, 0], [127, 0], [127, 127], [0, 127]]]
    )
    tris = delaunay(points)
    assert tris.min() >= 0 and tris.max() < len(points)
    corners = points[tris]
    u, v = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    areas = 0.5 * np.abs(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0])
    assert areas.min() > 0 and areas.sum() == pytest.approx(127 * 127, rel=1e-6)


def test_piecewise_warp_with_equal_points_is_the_identity():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    points = np.concatenate([rng.uniform(5, 58, (20, 2)), [[0, 0], [63, 0], [63, 63], [0, 63]]])
    out = piecewise_affine_warp(image, points, points, delaunay(points))
    assert np.abs(out.astype(int) - image).max() <= 1


@pytest.mark.shared
def test_piecewise_warp_moves_source_landmarks_onto_target_landmarks(pair):
    (_, _, _, src_lm), (_, _, _, _, dst_lm) = pair
    src_points, dst_points = control_points(src_lm, SIZE, 0.15), control_points(dst_lm, SIZE, 0.15)
    # warp an image whose pixels hold their own coordinates: the output says where it sampled
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    coords = np.dstack([xs, ys, np.zeros_like(xs)])
    sampled = piecewise_affine_warp(coords, src_points, dst_points, delaunay(dst_points))
    inner = dst_lm[17:].astype(np.float32)  # brows, eyes, nose, mouth
    looked_up = cv2.remap(sampled, inner[:, None, 0], inner[:, None, 1], cv2.INTER_LINEAR)[:, 0, :2]
    error = np.linalg.norm(looked_up - src_lm[17:], axis=1)
    moved = np.linalg.norm(dst_lm[17:] - src_lm[17:], axis=1)
    assert moved.mean() > 3  # the two faces' landmarks really differ
    # exact up to sampling a piecewise-linear map between pixel centres
    assert error.mean() < 0.5 and error.max() < 1.5


# --- the Swapper contract --------------------------------------------------------------------


def test_classic_satisfies_the_swapper_protocol():
    swapper = ClassicSwapper()
    assert isinstance(swapper, Swapper)
    assert swapper.name == "classic" and swapper.resolution == 256


@pytest.mark.shared
def test_swap_keeps_batch_shape_and_dtype(pair):
    (src_face, src_crop, _, src_lm), (_, _, tgt_crop, _, tgt_lm) = pair
    swapper = ClassicSwapper()
    crops = np.stack([tgt_crop, np.ascontiguousarray(tgt_crop[:, ::-1])])
    landmarks = np.stack(
        [tgt_lm, tgt_lm * [-1, 1] + [SIZE - 1, 0]]
    )  # mirrored crop, mirrored points
    out = swapper.swap(crops, _identity(src_face, src_crop, src_lm), landmarks)
    assert out.shape == crops.shape and out.dtype == np.uint8
    # the face area changed; the warp may replace the target only inside the face area
    face = area_mask(tgt_lm, SIZE) > 0.99
    assert np.abs(out[0].astype(int) - tgt_crop)[face].mean() > 10
    masks = swapper.blend_masks(landmarks, SIZE)
    assert masks.shape == (2, SIZE, SIZE) and masks.dtype == np.float32
    outside = area_mask(tgt_lm, SIZE, forehead=0.15) == 0
    assert masks[0][outside].max() == 0 and masks[0][face].mean() > 0.8
    # a source crop of another size is resized along with its landmarks
    small = cv2.resize(src_crop, (128, 128), interpolation=cv2.INTER_AREA)
    out_small = swapper.swap(
        crops[:1], _identity(src_face, small, (src_lm + 0.5) / 2 - 0.5), landmarks[:1]
    )
    assert np.abs(out_small[0].astype(int) - out[0]).mean() < 3


@pytest.mark.shared
def test_swap_rejects_missing_or_mismatched_landmarks(pair):
    (src_face, src_crop, _, src_lm), (_, _, tgt_crop, _, tgt_lm) = pair
    swapper, identity = ClassicSwapper(), _identity(src_face, src_crop, src_lm)
    with pytest.raises(ValueError, match="target_landmarks"):
        swapper.swap(tgt_crop[None], identity)
    with pytest.raises(ValueError, match="target_landmarks"):
        swapper.swap(tgt_crop[None], identity, np.stack([tgt_lm, tgt_lm]))
    with pytest.raises(ValueError, match="uint8"):
        swapper.swap(tgt_crop[None].astype(np.float32), identity, tgt_lm[None])


# --- end to end: the identity moves towards the source ---------------------------------------


@pytest.mark.shared
def test_classic_swap_moves_identity_towards_the_source(shared_data, analyser, load_rgb):
    data = shared_data / "deepface_testset"
    swapper = ClassicSwapper()
    to_source, target_to_source = [], []
    for source_path, target_path in PAIRS:
        source, target = load_rgb(data / source_path), load_rgb(data / target_path)
        src_face, src_crop, _, src_lm = _prepared(analyser, source)
        tgt_face, _, _, _ = _prepared(analyser, target)
        identity = _identity(src_face, src_crop, src_lm)
        (result,) = swap_frames([target], [[tgt_face]], swapper, identity)
        found = [f for f in analyser.detect(result) if iou(f.bbox, tgt_face.bbox) > 0.3]
        assert found, f"no face found after swapping {source_path} onto {target_path}"
        result_face = analyser.embed(result, found[0])
        to_source.append(embedding_distance(result_face.embedding, src_face.embedding))
        target_to_source.append(embedding_distance(tgt_face.embedding, src_face.embedding))
    to_source, target_to_source = np.array(to_source), np.array(target_to_source)
    print(
        f"\nclassic swap, {len(PAIRS)} pairs: mean dist(result, source) {to_source.mean():.3f}, "
        f"mean dist(target, source) {target_to_source.mean():.3f}, "
        f"closer on {(to_source < target_to_source).sum()}/{len(PAIRS)}"
    )
    assert (to_source < target_to_source).mean() >= 0.7
    assert to_source.mean() < target_to_source.mean() - 0.1
