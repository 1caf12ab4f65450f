"""`eval swapper`: native-size swap metrics on real swaps, the recognizer's checks, --quick."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import run_cli

from slimswap import media
from slimswap.errors import UserError
from slimswap.evaluate import heldout, metrics, regions, report, swap_eval
from slimswap.evaluate.recognition import load_eval_recognizer
from slimswap.nets.recognizer import FaceRecognizer, RecognizerConfig, save_recognizer
from slimswap.paths import EXAMPLES_DIR
from slimswap.swap.registry import load_swapper

TARGET = EXAMPLES_DIR / "grace_hopper.jpg"
SOURCE = EXAMPLES_DIR / "astronaut.png"
TINY = RecognizerConfig(widths=(8, 16, 16, 16), depths=(1, 1, 1, 1), embed_dim=32)


@pytest.fixture(scope="module")
def real_swap(analyser):
    """A classic swap of the astronaut into Grace Hopper's photo, through the pipeline."""
    target, source = media.read_image(TARGET), media.read_image(SOURCE)
    tface = analyser.embed(target, max(analyser.detect(target), key=lambda f: f.area))
    sface = analyser.embed(source, max(analyser.detect(source), key=lambda f: f.area))
    swapper = load_swapper("classic")
    identity = swap_eval.identity_from_face(source, sface, swapper.resolution)
    out = swap_eval.swap_in_photo(target, tface, swapper, identity)
    assert out.shape == target.shape and (out != target).any()
    return target, out, tface


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    """A randomly initialised, tiny recognizer: the code paths without the trained weights."""
    import torch

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("recognizer") / "eval_recognizer.safetensors"
    return save_recognizer(FaceRecognizer(TINY).eval(), path)


# ----------------------------------------------------------------------------- metrics


def test_sharpness_ratio_drops_when_a_real_swap_is_blurred(real_swap):
    target, out, face = real_swap
    inner = regions.inner_face_mask(target.shape, face.landmarks)
    base = swap_eval.image_scores(out, target, face.landmarks, False)["sharpness_ratio"]
    own = swap_eval.image_scores(target, target, face.landmarks, False)["sharpness_ratio"]
    assert own == pytest.approx(1.0)
    blurred = out.copy()
    blurred[inner] = cv2.GaussianBlur(out, (0, 0), 1.5)[inner]
    soft = swap_eval.image_scores(blurred, target, face.landmarks, False)["sharpness_ratio"]
    assert soft < 0.6 * base, (soft, base)
    # blurring everything two pixels or more away from the inner face changes nothing
    far = cv2.dilate(inner.astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
    outside = out.copy()
    outside[far] = cv2.GaussianBlur(out, (0, 0), 3.0)[far]
    same = swap_eval.image_scores(outside, target, face.landmarks, False)["sharpness_ratio"]
    assert same == pytest.approx(base)


def test_skin_colour_difference_catches_a_purple_cast_on_the_skin_only(real_swap):
    target, out, face = real_swap
    lm = face.landmarks
    base = swap_eval.image_scores(out, target, lm, False)
    skin = regions.skin_mask(target.shape, lm)
    purple = out.astype(np.int16)
    purple[skin] += np.array([18, -12, 22], np.int16)
    cast = swap_eval.image_scores(np.clip(purple, 0, 255).astype(np.uint8), target, lm, False)
    assert cast["de2000_mean"] > base["de2000_mean"] + 4, (cast, base)
    assert cast["de2000_p95"] > base["de2000_p95"]
    # the eyes and lips are not skin: a cast there leaves the skin score as it was
    parts = regions.hull_mask(target.shape, lm[48:60]) | regions.hull_mask(target.shape, lm[36:42])
    assert not (parts & skin).any()
    lips = out.astype(np.int16)
    lips[parts] += np.array([18, -12, 22], np.int16)
    other = swap_eval.image_scores(np.clip(lips, 0, 255).astype(np.uint8), target, lm, False)
    assert other["de2000_mean"] == pytest.approx(base["de2000_mean"])


def test_reconstruction_is_perfect_for_the_target_itself_and_not_for_a_swap(real_swap):
    target, out, face = real_swap
    own = swap_eval.image_scores(target, target, face.landmarks, True)
    assert own["psnr"] == metrics.PSNR_CAP and own["ssim"] == pytest.approx(1.0)
    assert own["de2000_mean"] == 0.0 and own["de2000_p95"] == 0.0
    swap = swap_eval.image_scores(out, target, face.landmarks, True)
    assert swap["psnr"] < 35 and swap["ssim"] < 0.95


def test_regions_cover_the_features_and_leave_them_out_of_the_skin(real_swap):
    target, _, face = real_swap
    lm = face.landmarks
    inner = regions.inner_face_mask(target.shape, lm)
    skin = regions.skin_mask(target.shape, lm)

    def at(mask, p):
        return bool(mask[round(p[1]), round(p[0])])

    eyes, nose, mouth = lm[36:42].mean(0), lm[30], lm[60:68].mean(0)
    cheek = (lm[2] + lm[31]) / 2  # between the jaw and the side of the nose
    assert all(at(inner, p) for p in (eyes, nose, mouth))
    assert not any(at(inner, p) for p in (lm[0], lm[8], lm[16], (0, 0)))
    assert not any(at(skin, p) for p in (eyes, mouth, lm[19]))
    assert at(skin, cheek) and at(skin, nose)


def test_retrieval_leaves_the_pairs_own_photos_out_of_the_gallery():
    # identity 0: photo 0 is the query itself, photo 1 is far away; identity 1 sits between
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6], [0.8, 0.6]])
    labels = np.array([0, 0, 1, 1])
    query = np.array([1.0, 0.0])
    assert metrics.nearest_identity(query, emb, labels) == 1  # mean of identity 0 is (0.5, 0.5)
    emb[1] = [0.95, 0.05]
    assert metrics.nearest_identity(query, emb, labels) == 0
    assert metrics.nearest_identity(query, emb, labels, exclude=(0, 1)) == 1
    assert metrics.nearest_identity(query, emb, labels, exclude=(0, 1, 2, 3)) == -1
    assert metrics.mean_of_lowest([3, 1, 2, np.nan, 4, 5, 6, 7, 8, 9, 10], 0.2) == 1.5


def test_pairs_are_distinct_and_video_frames_a_second_apart():
    labels = np.array([0, 0, 1, 1, 2])
    cross = heldout.cross_pairs(labels, 100, seed=3)
    assert len(cross) == len(set(cross)) == 25 - 4 - 4 - 1
    assert all(labels[s] != labels[t] for s, t in cross)
    assert cross == heldout.cross_pairs(labels, 100, seed=3)
    frames = np.array([0, 10, 20, 45, 90, 0, 40])
    same = heldout.same_pairs(np.array([0, 0, 0, 0, 0, 1, 1]), 50, 0, frames, np.full(7, 30.0))
    assert same and all(abs(frames[s] - frames[t]) >= 30 for s, t in same)
    assert (5, 6) in same and (0, 1) not in same


def test_pairs_are_balanced_over_people_not_photos():
    # one person with 150 frames among ten people with three photos each
    labels = np.concatenate([np.zeros(150, int), np.repeat(np.arange(1, 11), 3)])
    cross = heldout.cross_pairs(labels, 200, seed=0)
    share = np.mean([labels[t] == 0 for _, t in cross])
    assert 0.03 < share < 0.2, share  # about 1/11, not 150/180
    same = heldout.same_pairs(labels, 22, seed=0)
    assert sum(labels[t] == 0 for _, t in same) == 2  # one turn each, twice round


# ----------------------------------------------------------------------------- the recognizer


def test_listed_recognizer_is_hash_checked_before_loading(tmp_path, tiny_weights, real_swap):
    weights = tmp_path / "eval_recognizer.safetensors"
    weights.write_bytes(tiny_weights.read_bytes())
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    manifest = tmp_path / "MANIFEST"
    entry = {"name": "eval_recognizer", "file": weights.name, "sha256": sha, "mode": "evaluation"}
    manifest.write_text(json.dumps({"models": [entry]}))
    judge = load_eval_recognizer(None, manifest=manifest)
    assert judge.listed and judge.sha256 == sha
    target, out, face = real_swap
    emb = judge.embed_faces([target, out], [face.kps, face.kps])
    assert emb.shape == (2, 32) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-4)

    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(UserError, match="corrupted"):
        load_eval_recognizer(None, manifest=manifest)
    weights.unlink()
    with pytest.raises(UserError, match="missing"):
        load_eval_recognizer(None, manifest=manifest)
    manifest.write_text(json.dumps({"models": []}))
    with pytest.raises(UserError, match="--recognizer"):
        load_eval_recognizer(None, manifest=manifest)
    unlisted = load_eval_recognizer(tiny_weights, manifest=manifest)
    assert not unlisted.listed


# ----------------------------------------------------------------------------- the command


@pytest.mark.shared
@pytest.mark.slow
def test_quick_eval_scores_every_field_and_resumes_from_its_cache(
    shared_data, tmp_path, tiny_weights
):
    out = tmp_path / "eval"
    args = ["eval", "swapper", "--quick", "--recognizer", tiny_weights, "--out", out]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((out / "eval.json").read_text())
    from slimswap.swap.registry import pick_entry

    on_cpu = {pick_entry(mode, "cpu").name for mode in ("quality", "lite")}
    assert {r["model"] for r in rows} == {"classic", *on_cpu}
    assert {r["test_set"] for r in rows} == {"deepface_testset", "video_held_out"}
    for r in rows:
        assert report.missing_fields(r) == [], (r["model"], r["test_set"])
        assert r["recon_pairs"] == 2 and r["self_swaps"] == 2
        if r["kind"] == "photos":
            assert r["pairs"] == 4 and 0 < r["sharpness_ratio"] < 3
            assert -1 <= r["rec_cos_to_source"] <= 1 and r["de2000_p95"] >= r["de2000_mean"] > 0
    grid = cv2.imread(str(out / "eval_grid.png"))
    assert grid.shape == (30 + 4 * swap_eval.CELL_PX, 5 * swap_eval.CELL_PX, 3)
    md = (out / "eval.md").read_text()
    assert "not the MANIFEST's entry" in md and "top-1 as source" in md

    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "36 pair scores from the cache" in (out / "eval.md").read_text()
    rows2 = json.loads((out / "eval.json").read_text())
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in rows2] == [
        {k: v for k, v in r.items() if k != "seconds"} for r in rows
    ]


def test_missing_recognizer_is_a_user_error(tmp_path):
    proc = run_cli(
        "eval", "swapper", "--recognizer", tmp_path / "none.safetensors", "--out", tmp_path
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "none.safetensors" in proc.stderr and "not found" in proc.stderr


def test_the_mediapipe_driver_swaps_with_its_own_face_and_dlibs_descriptor(analyser_dlib):
    """`--driver mediapipe` puts MediaPipe's landmarks where the product would and keeps the
    judge's dlib descriptor; the default leaves the judge's face as it is."""
    from slimswap.evaluate.swap_eval_scores import Side
    from slimswap.face.select import iou

    runs = {
        d: swap_eval._Evaluation([], None, swap_eval.EvalConfig(driver=d), analyser_dlib, None)
        for d in ("dlib", "mediapipe")
    }
    face = runs["dlib"].photos.face(TARGET)
    side = Side(0, TARGET, face, np.zeros(1))
    assert runs["dlib"].driving(side) is face
    driven = runs["mediapipe"].driving(side)
    assert driven is not face and driven.mesh is not None  # MediaPipe's face
    assert driven.embedding is face.embedding and iou(driven.bbox, face.bbox) > 0.5
    nme = metrics.landmark_nme(driven.landmarks, face.landmarks)
    assert 0.003 < nme < 0.08, nme  # another landmark model, the same face
