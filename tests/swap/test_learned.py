"""The shipped swap models (models/MANIFEST): integrity, contract, and identity on real faces."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from slimswap.errors import UserError
from slimswap.face.align import align, transform_points
from slimswap.face.analyser import embedding_distance
from slimswap.pipeline import swap_frames
from slimswap.swap.base import SourceIdentity
from slimswap.swap.registry import load_swapper, read_manifest
from slimswap.swap.weights import load_generator

ENTRIES = read_manifest()


def test_manifest_lists_quality_and_lite_models():
    modes = {e.mode for e in ENTRIES}
    assert {"quality", "lite"} <= modes
    for e in ENTRIES:
        assert e.path.is_file(), e.path
        assert e.path.stat().st_size <= 16 * 2**20
        assert len(e.sha256) == 64


def test_corrupted_weight_file_is_refused(tmp_path):
    entry = next(e for e in ENTRIES if e.backend == "torch")
    bad = tmp_path / entry.file
    shutil.copy(entry.path, bad)
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(UserError, match="corrupted"):
        load_generator(bad, expected_sha256=entry.sha256)
    assert load_generator(entry.path, expected_sha256=entry.sha256) is not None


def _pairs(shared_data, n):
    folders = sorted(p for p in (shared_data / "deepface_testset").glob("id*") if p.is_dir())
    imgs = [min(f.glob("*.jpg")) for f in folders]
    return [(imgs[i], imgs[(i + 3) % len(imgs)]) for i in range(n)]


@pytest.mark.shared
@pytest.mark.parametrize("mode", ["quality", "lite"])
def test_learned_swap_moves_identity_and_keeps_landmarks(mode, shared_data, analyser, load_rgb):
    """On real pairs of different people: closer to the source, pose kept (NME <= 0.05)."""
    from slimswap.evaluate.metrics import landmark_nme
    from slimswap.face.select import iou

    swapper = load_swapper(mode, "cpu")
    closer, nmes, before, after = 0, [], [], []
    pairs = _pairs(shared_data, 8)
    for src_path, tgt_path in pairs:
        src, tgt = load_rgb(src_path), load_rgb(tgt_path)
        sface = analyser.embed(src, max(analyser.detect(src), key=lambda f: f.area))
        tface = analyser.embed(tgt, max(analyser.detect(tgt), key=lambda f: f.area))
        crop, affine = align(src, sface.kps, swapper.resolution)
        ident = SourceIdentity(
            sface.embedding, crop, transform_points(sface.landmarks, affine).astype(np.float32)
        )
        (out,) = swap_frames([tgt], [[tface]], swapper, ident)
        found = [f for f in analyser.detect(out) if iou(f.bbox, tface.bbox) > 0.3]
        assert found, f"no face in the swap of {tgt_path.name}"
        res = analyser.embed(out, found[0])
        d_before = embedding_distance(tface.embedding, sface.embedding)
        d_after = embedding_distance(res.embedding, sface.embedding)
        before.append(d_before)
        after.append(d_after)
        closer += d_after < d_before
        nmes.append(landmark_nme(res.landmarks, tface.landmarks))
    print(
        f"{mode}: distance to source {np.mean(before):.3f} -> {np.mean(after):.3f}, NME {np.mean(nmes):.4f}"
    )
    assert closer >= 0.75 * len(pairs)
    assert np.mean(after) < np.mean(before) - 0.1
    assert np.mean(nmes) <= 0.05
