"""Shard building on a small folder of real faces (plus broken files) built in tmp_path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from slimswap.files import sha256_file
from slimswap.paths import shared_data_dir
from slimswap.train.build import BuildConfig, build_dataset, split_identities
from slimswap.train.shards import load_shard

pytestmark = pytest.mark.shared

LFW_PEOPLE = [  # 3-4 images each
    "Aaron_Peirsol",
    "Abdoulaye_Wade",
    "Abdullah",
    "Abdullah_al-Attiyah",
    "Abel_Pacheco",
    "Adam_Sandler",
    "Adel_Al-Jubeir",
    "Akbar_Hashemi_Rafsanjani",
    "Matt_Damon",  # also deepface's id11: must not train
]
CELEBA_PEOPLE = ["07201", "07202"]  # in-the-wild photos, some faces big enough for 256 px
DEEPFACE_PEOPLE = ["id06", "id11"]  # Elon Musk, Matt Damon: photos of 600-2500 px
CFG = BuildConfig(test_identities=2, val_identities=2, chunk_images=8, workers=2)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path, Path]:
    data = shared_data_dir()
    if data is None:
        pytest.skip("../shared/data not present (set SLIMSWAP_SHARED to its parent)")
    root = tmp_path_factory.mktemp("faces")
    lfw, celeba, deepface = root / "lfw", root / "celeba", root / "deepface"
    for dst, src, people in (
        (lfw, data / "lfw_deepfunneled", LFW_PEOPLE),
        (celeba, data / "celeba_wild_subset", CELEBA_PEOPLE),
        (deepface, data / "deepface_testset", DEEPFACE_PEOPLE),
    ):
        for person in people:
            shutil.copytree(src / person, dst / person)
    good = min((lfw / "Abdullah").glob("*.jpg")).read_bytes()
    (lfw / "Abdullah" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (lfw / "Abdullah" / "notes.jpg").write_text("not an image\n")
    from skimage import data as skdata

    (lfw / "No_Face").mkdir()
    bgr_coffee = cv2.cvtColor(skdata.coffee(), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(lfw / "No_Face" / "coffee.jpg"), bgr_coffee)
    (celeba / "identity_subset.txt").write_text("a label file at the top level is not an image\n")
    return lfw, celeba, deepface


def _build(folders, out: Path):
    lfw, celeba, deepface = folders
    return build_dataset([lfw, celeba], out, {"deepface": deepface}, CFG, progress=False)


@pytest.fixture(scope="module")
def built(folders, tmp_path_factory):
    return _build(folders, tmp_path_factory.mktemp("shards"))


def _shards(result):
    return {name: load_shard(result.out_dir / name) for name in result.manifest["shards"]}


def test_split_is_by_identity_and_recorded(built):
    ids = built.manifest["identities"]
    assert set(ids) == {"train", "val", "test", "deepface"}
    seen: dict[str, str] = {}
    for split, names in ids.items():
        for name in names:
            assert name not in seen, f"{name} in {seen.get(name)} and {split}"
            seen[name] = split
    assert ids["deepface"] == ["deepface/id06", "deepface/id11"]
    assert len(ids["val"]) >= 2 and len(ids["test"]) >= 2 and len(ids["train"]) >= 4
    for name, shard in _shards(built).items():
        split = built.manifest["shards"][name]["split"]
        assert {seen[str(n)] for n in shard.identities} == {split}
        for i, source in enumerate(shard.sources):
            assert str(source).rsplit("/", 1)[0] == shard.identity_of(i)


def test_test_identities_have_enough_images(built):
    counts = built.manifest["splits"]["test"]
    assert counts["identities_with_3plus"] >= CFG.test_identities
    test_128 = load_shard(built.out_dir / "test_128.npz")
    per_identity = np.bincount(test_128.labels)
    assert (per_identity >= 3).sum() >= CFG.test_identities


def test_build_is_deterministic_and_resumes(folders, built, tmp_path):
    again = _build(folders, tmp_path / "b")
    assert again.analysed == built.analysed  # a fresh folder analyses everything again
    assert again.manifest["identities"] == built.manifest["identities"]
    assert {k: v["sha256"] for k, v in again.manifest["shards"].items()} == {
        k: v["sha256"] for k, v in built.manifest["shards"].items()
    }
    # an interrupted build: one cache chunk lost, shards gone; only that chunk is redone
    chunks = sorted((tmp_path / "b" / "cache").glob("analysis_*.npz"))
    assert len(chunks) > 2
    with np.load(chunks[1]) as z:
        lost = len(z["sources"])
    chunks[1].unlink()
    for name in again.manifest["shards"]:
        (tmp_path / "b" / name).unlink()
    resumed = _build(folders, tmp_path / "b")
    assert resumed.analysed == lost > 0
    assert resumed.cached == built.analysed - lost
    assert resumed.manifest["shards"] == built.manifest["shards"]
    # a fresh copy of the same photos (new modification times) finds the analysis it paid for
    for f in (p for folder in folders for p in folder.rglob("*") if p.is_file()):
        os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    fresh = _build(folders, tmp_path / "b")
    assert fresh.analysed == 0 and fresh.manifest["shards"] == built.manifest["shards"]


def test_same_person_under_two_names_is_held_out(built):
    """LFW's Matt_Damon is deepface's id11: the leak guard keeps him out of training."""
    m = built.manifest
    assert "lfw/Matt_Damon" in m["identities"]["test"]
    counts: dict[str, int] = {}
    for name, info in m["shards"].items():
        if info["size"] == CFG.sizes[0] and info["split"] in ("train", "val", "test"):
            shard = load_shard(built.out_dir / name)
            for label in shard.labels:
                counts[shard.identities[label]] = counts.get(shard.identities[label], 0) + 1
    by_hash = split_identities(counts, CFG)
    assert "lfw/Matt_Damon" not in by_hash["test"]  # so it was the guard that moved him
    moved = {entry["identity"]: entry for entry in m["leak_guard"]["moved_to_test"]}
    assert moved["lfw/Matt_Damon"]["nearest"] == "deepface/id11"
    assert moved["lfw/Matt_Damon"]["distance"] < CFG.leak_threshold


def test_manifest_counts_match_files(built):
    m = built.manifest
    total = 0
    for name, info in m["shards"].items():
        path = built.out_dir / name
        shard = load_shard(path)
        per_size = m["splits"][info["split"]]["images_per_size"]
        assert len(shard) == info["images"] == per_size[str(info["size"])]
        assert len(shard.identities) == info["identities"]
        assert sha256_file(path) == info["sha256"]
        total += len(shard) if info["size"] == CFG.sizes[0] else 0
    assert total == m["totals"]["faces"] == m["totals"]["images"] - len(m["failures"])
    assert json.loads((built.out_dir / "manifest.json").read_text()) == m


def test_bad_images_are_reported_and_skipped(built):
    failures = {f["source"]: f["reason"] for f in built.manifest["failures"]}
    assert failures["lfw/Abdullah/truncated.jpg"].startswith("unreadable")
    assert failures["lfw/Abdullah/notes.jpg"].startswith("unreadable")
    assert failures["lfw/No_Face/coffee.jpg"] == "no face"
    assert built.manifest["failure_counts"]["unreadable"] == 2
    all_sources = {str(s) for shard in _shards(built).values() for s in shard.sources}
    assert not all_sources & set(failures)
    named = {n for names in built.manifest["identities"].values() for n in names}
    assert "lfw/No_Face" not in named


def test_crops_decode_with_landmarks_inside(built):
    sizes = set()
    for shard in _shards(built).values():
        crops = shard.decode()
        assert crops.shape == (len(shard), shard.size, shard.size, 3) and crops.dtype == np.uint8
        lm = shard.landmarks.astype(np.float32)
        assert lm.shape == (len(shard), 68, 2)
        # brows, eyes, nose and mouth lie inside the crop; the tight dlib-chip template cuts
        # the jaw line of turned heads, so the 17 contour points may stick out a little
        inner = lm[:, 17:]
        assert (inner >= 0).all() and (inner < shard.size).all()
        assert (lm > -0.15 * shard.size).all() and (lm < 1.15 * shard.size).all()
        # the eyes sit where the alignment template puts them
        eyes = np.stack([lm[:, 36:42].mean(1), lm[:, 42:48].mean(1)], 1) / shard.size
        assert np.abs(eyes - [[0.318, 0.312], [0.668, 0.312]]).max() < 0.05
        assert crops.std() > 20  # real pictures, not blank crops
        sizes.add(shard.size)
    assert sizes == {128, 256}


def test_shards_carry_the_meshs_landmarks_of_the_same_face(built):
    """MediaPipe's mapped points sit on dlib's face (same eyes, nose and mouth within a tenth
    of the eye distance), so a pair drawn by the mesh warps the same face the product would."""
    counts = built.manifest["mesh"]
    assert counts["detected"] + counts["in_dlib_box"] == built.manifest["totals"]["faces"]
    assert counts["detected"] >= 0.9 * built.manifest["totals"]["faces"]
    for shard in _shards(built).values():
        mesh = shard.mesh_landmarks.astype(np.float32)
        lm = shard.landmarks.astype(np.float32)
        assert mesh.shape == lm.shape
        found = np.isfinite(mesh).all(axis=(1, 2))
        assert found.mean() >= 0.9
        iod = np.linalg.norm(lm[:, 36:42].mean(1) - lm[:, 42:48].mean(1), axis=1)
        err = np.linalg.norm(mesh[:, 17:] - lm[:, 17:], axis=2).mean(1) / iod
        assert np.median(err[found]) < 0.1, np.median(err[found])
    # and the trainer's loader keeps them (session 6's first campaign call died here)
    from slimswap.train.swap_data import load_swap_dataset

    paths = [str(built.out_dir / n) for n in ("train_128.npz", "train_256.npz")]
    ds = load_swap_dataset(paths, 64, torch.device("cpu"), mesh=True)
    assert ds.has_mesh is not None and ds.has_mesh.float().mean() >= 0.9


def test_embeddings_and_crops_belong_to_the_labelled_person(built):
    """Each row's embedding is its own face's: same person < 0.6 < different people, and
    dlib's descriptor of the stored crop agrees with the stored descriptor."""
    from slimswap.face.analyser import FaceAnalyser, embedding_distance

    shard = load_shard(built.out_dir / "train_128.npz")
    emb = shard.embeddings.astype(np.float32)
    dist = np.linalg.norm(emb[:, None] - emb[None], axis=-1)
    same = shard.labels[:, None] == shard.labels[None]
    off_diag = ~np.eye(len(shard), dtype=bool)
    assert np.median(dist[same & off_diag]) < 0.5 < np.median(dist[~same])
    fa = FaceAnalyser()
    for i in range(0, len(shard), 5):
        chip = cv2.resize(shard.image(i), (150, 150), interpolation=cv2.INTER_LINEAR)
        assert embedding_distance(fa.embed_chip(chip), emb[i]) < 0.25


def test_load_shard_needs_no_dlib(built):
    code = (
        "import sys; sys.modules['dlib'] = None; sys.modules['PIL'] = None\n"
        "from slimswap.train.shards import load_shard\n"
        f"s = load_shard({str(built.out_dir / 'train_128.npz')!r})\n"
        "print(s.decode().shape)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().startswith("(")


def test_split_depends_on_names_not_order():
    counts = {f"set/p{i:03d}": 1 + i % 5 for i in range(300)}
    cfg = BuildConfig(test_identities=20, val_identities=10)
    a = split_identities(counts, cfg)
    b = split_identities(dict(reversed(list(counts.items()))), cfg)
    assert a == b
    assert len(a["test"]) == 20 and all(counts[n] >= 3 for n in a["test"])
    assert len(a["val"]) == 10 and all(counts[n] >= 2 for n in a["val"])
    assert sorted(a["train"] + a["val"] + a["test"]) == sorted(counts)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Two short talking-head clips: one to train on, one the data build holds out (d10)."""
    from slimswap.evaluate.bench_e2e import trim_video
    from slimswap.paths import EXAMPLES_DIR

    folder = tmp_path_factory.mktemp("clips")
    trim_video(EXAMPLES_DIR / "clip.mp4", folder / "liveportrait_driving_d10.mp4", 6)
    data = shared_data_dir()
    trim_video(data / "videos" / "liveportrait_driving_d3.mp4", folder / "talker.mp4", 6)
    return folder


@pytest.mark.slow
def test_data_build_command_on_real_faces_broken_files_and_clips(folders, clips, tmp_path):
    """`slimswap data build` as a user runs it: exit 0, counts that match the files, every
    identity in exactly one split, broken files listed, clips as frame folders."""
    lfw, celeba, deepface = folders
    out = tmp_path / "shards"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "slimswap.cli",
            "data",
            "build",
            str(lfw),
            str(celeba),
            "--extra-test",
            f"deepface={deepface}",
            "--videos",
            str(clips),
            "--out",
            str(out),
            "--workers",
            "2",
            "--test-identities",
            "2",
            "--val-identities",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == str(out)
    m = json.loads((out / "manifest.json").read_text())
    ids = m["identities"]
    assert set(ids) == {"train", "val", "test", "deepface", "videos"}
    assert ids["videos"] == ["video_held_out/liveportrait_driving_d10"]
    assert "video_train/talker" in ids["train"] + ids["val"] + ids["test"]
    split_of: dict[str, str] = {}
    for split, names in ids.items():
        for name in names:
            assert name not in split_of, f"{name} in {split_of[name]} and {split}"
            split_of[name] = split
    faces = 0
    for name, info in m["shards"].items():
        shard = load_shard(out / name)
        assert (
            len(shard)
            == info["images"]
            == m["splits"][info["split"]]["images_per_size"][str(info["size"])]
        )
        assert sha256_file(out / name) == info["sha256"]
        assert {split_of[str(n)] for n in shard.identities} == {info["split"]}
        faces += len(shard) if info["size"] == 128 else 0
    assert faces == m["totals"]["faces"] == m["totals"]["images"] - len(m["failures"])
    reasons = {f["source"]: f["reason"] for f in m["failures"]}
    assert reasons["lfw/Abdullah/truncated.jpg"].startswith("unreadable")
    assert reasons["lfw/No_Face/coffee.jpg"] == "no face"
    assert m["inputs"][-1]["images"] == 6  # every frame of the 6-frame held-out clip
