"""Robustness subsets and temporal stability, on real faces and the bundled clip."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import run_cli, run_report

from slimswap import media
from slimswap.evaluate import robustness, temporal
from slimswap.evaluate.bench_e2e import trim_video
from slimswap.face.analyser import FaceAnalyser
from slimswap.paths import EXAMPLES_DIR

FACE = EXAMPLES_DIR / "grace_hopper.jpg"
CLIP = EXAMPLES_DIR / "clip.mp4"


@pytest.fixture(scope="module")
def hopper(analyser):
    frame = media.read_image(FACE)
    (face,) = analyser.detect(frame)
    return frame, face


# ----------------------------------------------------------------------------- transformations


def _outside(frame: np.ndarray, bbox: np.ndarray, grow: float = 0.5) -> np.ndarray:
    """Mask of the pixels well away from the face box."""
    x0, y0, x1, y1 = bbox
    dx, dy = grow * (x1 - x0), grow * (y1 - y0)
    mask = np.ones(frame.shape[:2], bool)
    mask[max(0, int(y0 - dy)) : int(y1 + dy), max(0, int(x0 - dx)) : int(x1 + dx)] = False
    return mask


@pytest.mark.parametrize("subset", ["occlusion_rect", "occlusion_hand"])
def test_occluders_cover_part_of_the_face_and_nothing_far_from_it(hopper, subset):
    frame, face = hopper
    out, ref = robustness.transform(subset, frame, face, seed=3, p=robustness.TransformParams())
    assert ref is face and out.shape == frame.shape and out.dtype == np.uint8
    changed = np.any(out != frame, axis=2)
    hull = temporal.face_region(frame.shape[:2], face.landmarks)
    share = changed[hull].mean()
    assert 0.1 < share < 0.7, share  # part of the face, not all of it
    assert not changed[_outside(frame, face.bbox)].any()


def test_low_light_darkens_and_adds_noise(hopper):
    frame, face = hopper
    dark, _ = robustness.transform("low_light", frame, face, seed=0, p=robustness.TransformParams())
    assert dark.mean() < 0.4 * frame.mean()
    p = robustness.TransformParams(low_light_noise=0.0)
    clean_dark = robustness.low_light(frame, np.random.default_rng(0), p)
    noise = dark.astype(float) - clean_dark
    assert 4.0 < noise[clean_dark > 20].std() < 12.0  # the configured sigma 8, less clipping


def test_small_subset_shrinks_the_face_and_maps_its_reference(hopper, analyser):
    frame, face = hopper
    p = robustness.TransformParams()
    small, ref = robustness.transform("small", frame, face, seed=0, p=p)
    assert robustness.face_width(ref.landmarks) == pytest.approx(p.small_face_px, rel=0.03)
    found, _ = robustness.detect_target(small, ref, analyser, upsample=0)
    assert found is not None  # with the +1 upsampling retry at least
    from slimswap.evaluate import metrics

    assert metrics.landmark_nme(found.landmarks, ref.landmarks) < 0.15


def test_yaw_proxy_follows_the_nose_and_profile_takes_the_most_turned(hopper):
    _, face = hopper
    lm = face.landmarks.copy()
    assert abs(robustness.yaw_proxy(lm)) < 0.25  # a frontal portrait
    width = robustness.face_width(lm)
    turned = {}
    for shift in (-0.25, 0.25):
        moved = lm.copy()
        moved[robustness.NOSE_TIP, 0] += shift * width
        turned[shift] = robustness.yaw_proxy(moved)
    assert (
        min(abs(turned[-0.25]), abs(turned[0.25])) > 0.3 and turned[-0.25] * turned[0.25] < 0
    )  # turning either way

    # a set of 6 frontal faces (nose centred) where face 4 is turned most and face 1 next
    lm[robustness.NOSE_TIP, 0] = (lm[robustness.JAW_LEFT, 0] + lm[robustness.JAW_RIGHT, 0]) / 2
    lms = np.stack([lm] * 6)
    lms[4, robustness.NOSE_TIP, 0] += 0.3 * width
    lms[1, robustness.NOSE_TIP, 0] -= 0.2 * width
    faces = robustness.FaceSet(
        "toy",
        np.array([0, 1, 2, 0, 1, 2]),
        np.zeros((6, 128)),
        lms,
        128,
        [FACE] * 6,
        lambda i: None,
    )
    cases = robustness.plan_cases(faces, n=1, seed=0)
    profile = [c.target for c in cases if c.subset == "profile"]
    assert profile[:2] == [4, 1]
    assert all(faces.labels[c.source] != faces.labels[c.target] for c in cases)
    # transformed subsets share targets and sources, so they compare pairwise
    per_subset = {
        s: [(c.source, c.target) for c in cases if c.subset == s] for s in robustness.SUBSETS
    }
    assert per_subset["clean"] == per_subset["low_light"] == per_subset["small"]


# ----------------------------------------------------------------------------- robustness end to end


def test_eval_robustness_cli_reports_every_subset_with_finite_numbers(tmp_path, shared_data):
    data = run_report(
        tmp_path / "robustness.json",
        "eval",
        "robustness",
        "--mode",
        "classic",
        "--faces",
        shared_data / "deepface_testset",
        "--max-photos",
        8,
        "--pairs",
        2,
        "--out",
        tmp_path,
    )
    assert (
        data["command"].startswith("slimswap eval robustness")
        and data["environment"]["device"] == "cpu"
    )
    rows = {r["subset"]: r for r in data["results"]}
    assert list(rows) == list(robustness.SUBSETS)
    for r in rows.values():
        assert r["model"] == "classic" and r["pairs"] == 2
        assert 0 <= r["target_detect_rate"] <= r["target_detect_rate_retry"] <= 1
        assert 0 < r["id_dist_to_source"] < 1.2 and 0 < r["landmark_nme"] < 0.5
    # on clean faces the swap carries the source's identity more than the target's
    assert rows["clean"]["id_dist_to_source"] < rows["clean"]["id_dist_to_target"]
    for name in ("robustness.md", "robustness.png", "robustness_grid.png"):
        assert (tmp_path / name).stat().st_size > 0


# ----------------------------------------------------------------------------- temporal


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    return trim_video(CLIP, tmp_path_factory.mktemp("clip") / "short.mp4", 16)


def test_flicker_ratio_is_one_for_the_original_and_high_for_noise(short_clip, tmp_path):
    fa = FaceAnalyser()
    original = temporal.track_original(short_clip, fa, every=8)
    assert len(original.landmarks) == 16 and all(lm is not None for lm in original.landmarks)
    emb = next(iter(original.embeddings.values()))
    same = temporal.evaluate_swapped("same", "short", original, short_clip, emb, fa, every=8)
    assert same.flicker_ratio == pytest.approx(1.0) and same.id_dist_to_target_mean < 0.05

    noisy = tmp_path / "noisy.mp4"
    rng = np.random.default_rng(0)
    with media.VideoWriter(noisy, media.probe_video(short_clip), None) as writer:
        for batch in media.read_frames(short_clip, 8):
            writer.write(
                [np.clip(f + rng.normal(0, 12, f.shape), 0, 255).astype(np.uint8) for f in batch]
            )
    flickery = temporal.evaluate_swapped("noisy", "short", original, noisy, emb, fa, every=8)
    assert flickery.flicker_ratio > temporal.TARGET_RATIO and not flickery.meets_target


def test_eval_temporal_cli_on_the_bundled_clip(tmp_path):
    data = run_report(
        tmp_path / "temporal.json",
        *("eval", "temporal", "--mode", "classic", "--max-frames", 16, "--every", 5),
        *("--out", tmp_path),
    )
    (r,) = data["results"]
    assert (r["model"], r["video"], r["frames"], r["frames_with_face"]) == (
        "classic",
        "clip.mp4",
        16,
        16,
    )
    assert r["id_samples"] == 4 and r["series"]["id_frames"] == [0, 5, 10, 15]
    assert (
        len(r["series"]["frame_change_swapped"]) == len(r["series"]["frame_change_original"]) == 15
    )
    assert r["flicker_original"] > 0 and r["flicker_ratio"] == pytest.approx(
        r["flicker_swapped"] / r["flicker_original"]
    )
    assert 0 < r["id_dist_to_source_mean"] <= r["id_dist_to_source_max"] < 1.2
    assert (tmp_path / "temporal.png").stat().st_size > 0


def test_eval_temporal_rejects_a_missing_video(tmp_path):
    proc = run_cli(
        "eval", "temporal", "--mode", "classic", "--video", tmp_path / "nope.mp4", "--out", tmp_path
    )
    assert (
        proc.returncode == 2
        and "video file not found" in proc.stderr
        and "Traceback" not in proc.stderr
    )
