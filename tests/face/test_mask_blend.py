"""Masks are soft where they should be, colour transfer moves skin tone, paste-back is local."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from slimswap.face.align import align, invert_affine, transform_points
from slimswap.face.blend import color_transfer, paste_back
from slimswap.face.mask import area_mask, box_mask, combine_masks, face_hull_points

SIZE = 128


def _aligned(analyser, frame, size=SIZE):
    face = max(analyser.detect(frame), key=lambda f: f.area)
    crop, affine = align(frame, face.kps, size)
    return face, crop, affine, transform_points(face.landmarks, affine)


@pytest.fixture(scope="module")
def light_face(shared_data, analyser, load_rgb):
    """(frame, face, crop, affine, landmarks in crop) of a light-skinned face."""
    frame = load_rgb(shared_data / "deepface_testset/id03/img50.jpg")
    return (frame, *_aligned(analyser, frame))


@pytest.fixture(scope="module")
def dark_face(shared_data, analyser, load_rgb):
    frame = load_rgb(shared_data / "deepface_testset/id09/img25.jpg")
    return (frame, *_aligned(analyser, frame))


def _hull_inside(landmarks, size, forehead=0.15):
    hull = cv2.convexHull(np.round(face_hull_points(landmarks, forehead)).astype(np.int32))
    inside = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(inside, hull, 1)
    return inside.astype(bool)


# --- masks -------------------------------------------------------------------------------


def test_box_mask_is_one_inside_and_fades_to_zero_at_the_border():
    mask = box_mask(SIZE, blur_ratio=0.1)
    assert mask.shape == (SIZE, SIZE) and mask.dtype == np.float32
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    assert mask[SIZE // 2, SIZE // 2] > 0.999
    border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    assert border.max() < 0.01
    # feathered: strictly soft in between, and never decreasing towards the centre
    row, col = mask[SIZE // 2, : SIZE // 2], mask[: SIZE // 2, SIZE // 2]
    assert 0.2 < row[6] < 0.8
    assert np.all(np.diff(row) >= -1e-6) and np.all(np.diff(col) >= -1e-6)


def test_box_mask_padding_cuts_the_given_side():
    mask = box_mask((SIZE, 2 * SIZE), blur_ratio=0.05, padding=(0.0, 0.0, 0.3, 0.0))
    assert mask.shape == (SIZE, 2 * SIZE)
    assert mask[int(0.75 * SIZE) :].max() < 0.01  # bottom 30 % (minus rounding) removed
    assert mask[SIZE // 3, SIZE] > 0.999


def test_box_mask_without_blur_is_hard():
    mask = box_mask(64, blur_ratio=0.0, padding=0.25)
    assert set(np.unique(mask)) == {0.0, 1.0}
    assert mask[16:48, 16:48].all() and not mask[:16].any()


@pytest.mark.shared
def test_area_mask_covers_the_face_hull_and_stays_inside_it(light_face):
    _, _, _, _, landmarks = light_face
    mask = area_mask(landmarks, SIZE)
    assert mask.shape == (SIZE, SIZE) and mask.dtype == np.float32
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    inside = _hull_inside(landmarks, SIZE)
    assert mask[~inside].max() < 0.01  # the feather falls inside the face, never past it
    assert (mask[inside] > 0.5).mean() > 0.75  # and most of the hull is swapped
    # eyes, nose and mouth are fully inside
    inner = np.round(landmarks[27:68]).astype(int)
    assert mask[inner[:, 1], inner[:, 0]].min() > 0.95


@pytest.mark.shared
def test_area_mask_edge_decreases_from_nose_to_jaw(light_face):
    _, _, _, _, landmarks = light_face
    mask = area_mask(landmarks, SIZE)
    nose = landmarks[30]
    for jaw_point in landmarks[[2, 5, 8, 11, 14]]:
        # sample the ray from the nose tip to a bit beyond the jaw point
        t = np.linspace(0.0, 1.1, 60)
        xy = nose + t[:, None] * (jaw_point - nose)
        values = cv2.remap(
            mask, xy[:, :1].astype(np.float32), xy[:, 1:].astype(np.float32), cv2.INTER_LINEAR
        )
        values = values.ravel()
        assert values[0] > 0.99 and values[-1] < 0.05
        assert np.all(np.diff(values) <= 0.02)  # monotone up to interpolation wiggle


@pytest.mark.shared
def test_area_mask_forehead_raises_the_top_edge(light_face):
    _, _, _, _, landmarks = light_face
    low, high = area_mask(landmarks, SIZE, forehead=0.0), area_mask(landmarks, SIZE, forehead=0.3)

    def top_row(m):
        return np.flatnonzero((m > 0.5).any(1))[0]

    assert top_row(high) < top_row(low) - 5


def test_combine_masks_takes_the_minimum_and_checks_shapes():
    a, b = box_mask(32, 0.2), np.full((32, 32), 0.4, np.float32)
    np.testing.assert_array_equal(combine_masks(a, b), np.minimum(a, b))
    with pytest.raises(ValueError):
        combine_masks(a, np.ones((16, 16), np.float32))
    with pytest.raises(ValueError):
        combine_masks()


# --- colour transfer ---------------------------------------------------------------------


def _masked_lab_mean(rgb, mask):
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB).reshape(-1, 3)
    w = mask.reshape(-1, 1)
    return (lab * w).sum(0) / w.sum()


@pytest.mark.shared
def test_color_transfer_moves_skin_tone_to_the_target(light_face, dark_face):
    source_crop = light_face[2]
    target_crop, target_landmarks = dark_face[2], dark_face[4]
    mask = area_mask(target_landmarks, SIZE)
    before = np.linalg.norm(
        _masked_lab_mean(source_crop, mask) - _masked_lab_mean(target_crop, mask)
    )
    moved = color_transfer(source_crop, target_crop, mask)
    after = np.linalg.norm(_masked_lab_mean(moved, mask) - _masked_lab_mean(target_crop, mask))
    assert moved.shape == source_crop.shape and moved.dtype == np.uint8
    assert before > 10  # the two skin tones really differ
    assert after < 0.1 * before
    # lightness follows the target: the light face gets darker
    assert _masked_lab_mean(moved, mask)[0] < _masked_lab_mean(source_crop, mask)[0] - 5


def test_color_transfer_with_an_empty_mask_changes_nothing():
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(2))
    np.testing.assert_array_equal(color_transfer(a, b, np.zeros((16, 16), np.float32)), a)


# --- paste-back --------------------------------------------------------------------------


def _warped_mask(mask, affine, frame):
    return cv2.warpAffine(mask, invert_affine(affine), frame.shape[1::-1], flags=cv2.INTER_LINEAR)


@pytest.mark.shared
@pytest.mark.parametrize("blend", ["feather", "poisson"])
def test_paste_back_changes_only_the_masked_region(light_face, blend):
    frame, _, crop, affine, landmarks = light_face
    original = frame.copy()
    swapped = 255 - crop  # as different from the frame as a crop can be
    mask = area_mask(landmarks, SIZE)
    out = paste_back(frame, swapped, affine, mask, blend=blend)

    np.testing.assert_array_equal(frame, original)  # the input is never modified
    assert out.shape == frame.shape and out.dtype == np.uint8 and out is not frame
    weights = _warped_mask(mask, affine, frame)
    diff = np.abs(out.astype(int) - frame.astype(int)).max(-1)
    assert diff[weights == 0].max() == 0  # outside the mask: bit for bit the frame
    assert diff[weights < 1e-3].max() <= 1
    assert np.median(diff[weights > 0.99]) > 20  # inside: the swapped crop really landed
    # no seam: just inside the mask edge the change is still small
    rim = (weights > 1e-3) & (weights < 0.05)
    assert rim.sum() > 50 and np.percentile(diff[rim], 95) < 15


@pytest.mark.shared
@pytest.mark.parametrize("blend", ["feather", "poisson"])
def test_paste_back_leaves_no_seam(light_face, blend):
    # a uniformly brighter crop: any step in (out - frame) at the mask edge is a seam. The
    # difference is smoothed first so resampling noise in the face texture does not count;
    # a hard-edged mask measures about 0.25 * shift here, the feathered one about 0.1.
    frame, _, crop, affine, landmarks = light_face
    shift = 80
    brighter = np.clip(crop.astype(int) + shift, 0, 255).astype(np.uint8)
    mask = area_mask(landmarks, SIZE)
    out = paste_back(frame, brighter, affine, mask, blend=blend)
    diff = cv2.GaussianBlur((out.astype(np.float32) - frame).mean(-1), (0, 0), 1.5)
    step = np.maximum(np.abs(np.diff(diff, axis=0))[:, :-1], np.abs(np.diff(diff, axis=1))[:-1])
    assert step.max() < 0.18 * shift
    # feather keeps the crop's colours; Poisson keeps its gradients and takes its level
    # from the frame around it, so a pure brightness offset disappears
    inside = _warped_mask(mask, affine, frame) > 0.99
    lift = np.median(diff[inside])
    assert lift > 0.75 * shift if blend == "feather" else lift < 0.25 * shift


@pytest.mark.shared
def test_paste_back_feather_puts_the_crop_where_align_took_it(light_face):
    frame, _, crop, affine, landmarks = light_face
    brighter = np.clip(crop.astype(int) + 40, 0, 255).astype(np.uint8)
    out = paste_back(frame, brighter, affine, area_mask(landmarks, SIZE), blend="feather")
    inside = _warped_mask(area_mask(landmarks, SIZE), affine, frame) > 0.99
    gain = out.astype(int)[inside] - frame.astype(int)[inside]
    # brightness +40 everywhere inside (less where the frame was already near white)
    assert 30 < np.median(gain) <= 40


@pytest.mark.shared
@pytest.mark.parametrize("blend", ["feather", "poisson"])
def test_paste_back_handles_faces_cut_by_the_frame_edge(light_face, blend):
    frame, face, crop, affine, _ = light_face
    # crop the frame so that the left half of the face is outside it
    cut = int((face.bbox[0] + face.bbox[2]) / 2)
    part = np.ascontiguousarray(frame[:, cut:])
    shifted = affine.copy()
    shifted[:, 2] += affine[:, :2] @ np.array([cut, 0.0])  # same crop, frame origin moved
    out = paste_back(part, 255 - crop, shifted, box_mask(SIZE), blend=blend)
    assert out.shape == part.shape
    assert np.abs(out.astype(int) - part.astype(int)).max() > 50


def test_paste_back_with_an_empty_mask_returns_an_equal_copy():
    frame = np.full((64, 64, 3), 100, np.uint8)
    crop = np.zeros((32, 32, 3), np.uint8)
    affine = np.array([[1.0, 0, -10], [0, 1.0, -10]])
    out = paste_back(frame, crop, affine, np.zeros((32, 32), np.float32))
    np.testing.assert_array_equal(out, frame)
    assert out is not frame


def test_paste_back_rejects_bad_arguments():
    frame = np.zeros((64, 64, 3), np.uint8)
    crop = np.zeros((32, 32, 3), np.uint8)
    affine = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    with pytest.raises(ValueError, match="blend"):
        paste_back(frame, crop, affine, blend="median")
    with pytest.raises(ValueError, match="mask shape"):
        paste_back(frame, crop, affine, np.ones((16, 16), np.float32))


def test_detail_band_leaves_a_targets_glasses_rims_out(shared_data, analyser, load_rgb):
    """A face the frame shows larger than the crop gets the frame's own fine texture back
    (`--detail`), but not the target's strong edges: laid over the redrawn face, the rims of
    a target's glasses came back as translucent ghosts. Target: Pichai, black frames, a 580 px
    face (386 px as read here); swap: the same crop flipped left-right (its eyes and rims land
    elsewhere), pasted with and without the detail band. Measured: on the rims' pixels the
    band darkened the paste by 12.3 grey levels before `texture_weights`, 1.6 after; on the
    smooth skin its texture arrives as before (std of the band's change 2.88 / 2.87)."""
    from slimswap.face.blend import frame_detail
    from slimswap.face.mask import skin_mask

    frame = load_rgb(shared_data / "deepface_testset/id09/img24.jpg")
    face, crop, affine, lm = _aligned(analyser, frame, 256)  # the test's analyser: MediaPipe
    swap = np.ascontiguousarray(crop[:, ::-1])
    mask = combine_masks(box_mask(256), area_mask(lm, 256))
    skin = skin_mask(lm, 256)
    plain = paste_back(frame, swap, affine, mask).astype(np.float32)
    detailed = paste_back(frame, swap, affine, mask, detail=skin).astype(np.float32)
    # the target's pixels: rims = dark and strongly detailed; smooth skin = weakly detailed
    x0, y0, x1, y1 = (int(v) for v in face.bbox)
    roi = frame[y0:y1, x0:x1]
    band = np.abs(frame_detail(roi, (x1 - x0) / 256)).mean(-1)
    local = cv2.GaussianBlur(band, (0, 0), 2.0)
    luma = roi.astype(np.float32).mean(-1)
    under = cv2.warpAffine(skin, invert_affine(affine), frame.shape[1::-1])[y0:y1, x0:x1]
    rims = (under > 0.2) & (luma < 60) & (local > 10)
    smooth = (under > 0.9) & (local < 5)
    assert rims.sum() > 500 and smooth.sum() > 5000, (rims.sum(), smooth.sum())
    change = (detailed - plain)[y0:y1, x0:x1].mean(-1)
    assert -change[rims].mean() < 4.0, -change[rims].mean()  # no dark ghost of the rims
    assert change[smooth].std() > 2.0, change[smooth].std()  # the skin's texture is there
