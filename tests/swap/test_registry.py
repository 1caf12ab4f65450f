"""Every backend the registry offers keeps the Swapper contract, on real faces.

The list is read from models/MANIFEST (plus the classic swapper), so a new or replaced model
is tested without new test code, and a manifest that disagrees with its files is refused.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from slimswap import media
from slimswap.errors import UserError
from slimswap.face.align import align, transform_points
from slimswap.face.analyser import embedding_distance
from slimswap.face.select import iou
from slimswap.paths import EXAMPLES_DIR, MODELS_DIR
from slimswap.pipeline import load_source_identity, swap_frames
from slimswap.swap.base import Swapper
from slimswap.swap.registry import load_swapper, pick_entry, read_manifest, resolve_mode

BACKENDS = ["classic", *(e.name for e in read_manifest() if e.path.is_file())]
SOURCE = EXAMPLES_DIR / "grace_hopper.jpg"


@pytest.fixture(scope="module")
def targets(analyser):
    """Real target faces: the astronaut photo and four frames of the bundled clip."""
    frames = [media.read_image(EXAMPLES_DIR / "astronaut.png")]
    clip = [f for b in media.read_frames(EXAMPLES_DIR / "clip.mp4", 16) for f in b]
    frames += clip[::30]
    faces = [analyser.embed(f, max(analyser.detect(f), key=lambda x: x.area)) for f in frames]
    return frames, faces


def _crops(frames, faces, resolution: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    crops, lms = [], []
    for k in range(n):
        frame, face = frames[k % len(frames)], faces[k % len(faces)]
        crop, affine = align(frame, face.kps, resolution)
        crops.append(crop if k < len(frames) else np.ascontiguousarray(crop[:, ::-1]))
        lm = transform_points(face.landmarks, affine).astype(np.float32)
        lms.append(lm if k < len(frames) else lm * [-1, 1] + [resolution - 1, 0])
    return np.stack(crops), np.stack(lms)


def face_psnr(a: np.ndarray, b: np.ndarray, landmarks: np.ndarray) -> float:
    """PSNR of two crops inside the face region of crop-pixel landmarks (where a swap differs)."""
    from slimswap.evaluate.metrics import masked_psnr
    from slimswap.face.warp import face_region_mask

    return masked_psnr(a, b, face_region_mask(landmarks, a.shape[0]) > 0.5)


@pytest.mark.parametrize("model", BACKENDS)
def test_swap_keeps_batch_shape_and_dtype(model, targets, analyser):
    swapper: Swapper = load_swapper(model, "cpu")
    assert isinstance(swapper, Swapper) and swapper.name == model
    identity = load_source_identity(SOURCE, analyser, swapper.resolution)
    crops, lms = _crops(*targets, swapper.resolution, 8)
    one = swapper.swap(crops[:1], identity, target_landmarks=lms[:1])
    eight = swapper.swap(crops, identity, target_landmarks=lms)
    assert one.shape == crops[:1].shape and eight.shape == crops.shape
    assert one.dtype == eight.dtype == np.uint8
    assert swapper.swap(crops[:0], identity, target_landmarks=lms[:0]).shape == crops[:0].shape
    # a face's swap does not depend on what else is in the batch
    if model.endswith("_int8"):
        # The warp guide of a batch differs from a face alone by float rounding (~2e-7). An
        # INT8 graph turns that into other rounding choices, and ONNX Runtime picks other INT8
        # kernels per CPU (VNNI or not, AVX2/AVX-512/AMX) and per batch size: the face's
        # quantization noise drawn again, worst on single pixels (max |d| 16 on an AMD EPYC
        # without VNNI, 19-22 on Xeons with VNNI and AMX). So the check is what a user sees,
        # face-region PSNR of every face of the batch against the same face alone, with a floor
        # from the INT8 noise itself: INT8 vs fp32 measured 31.2 dB at worst over 9 faces on the
        # AMX Xeon (benchmarks/int8/, issue 23), and two independent draws of that noise are
        # 3 dB worse (28 dB), while the batch-vs-alone spread measured 39.1 dB at worst. A face
        # mixed with another face of the batch is far below it (the next assertion: < 20 dB).
        singles = np.concatenate(
            [
                swapper.swap(crops[i : i + 1], identity, target_landmarks=lms[i : i + 1])
                for i in range(8)
            ]
        )
        psnr = [face_psnr(eight[i], singles[i], lms[i]) for i in range(8)]
        assert min(psnr) >= 28.0, psnr
        assert face_psnr(eight[0], eight[1], lms[0]) < 20.0  # the metric sees another face
    else:
        assert np.abs(one[0].astype(int) - eight[0]).max() <= 1
    assert np.abs(eight.astype(int) - crops).mean() > 3  # and it is a swap, not a copy


@pytest.mark.parametrize("model", BACKENDS)
def test_swap_moves_identity_towards_the_source(model, targets, analyser):
    swapper = load_swapper(model, "cpu")
    identity = load_source_identity(SOURCE, analyser, swapper.resolution)
    frames, faces = targets
    swapped = swap_frames(frames, [[f] for f in faces], swapper, identity)
    before, after = [], []
    for out, face in zip(swapped, faces):
        found = [f for f in analyser.detect(out) if iou(f.bbox, face.bbox) > 0.3]
        assert found, f"{model}: no face left where it swapped"
        result = analyser.embed(out, found[0])
        before.append(embedding_distance(face.embedding, identity.embedding))
        after.append(embedding_distance(result.embedding, identity.embedding))
    closer = sum(a < b for a, b in zip(after, before))
    print(f"\n{model}: ID distance to source {np.mean(before):.3f} -> {np.mean(after):.3f}")
    assert closer >= 4 and np.mean(after) < np.mean(before) - 0.05


def test_lite_on_a_cpu_runs_onnx_and_precision_picks_the_file():
    lite = [e for e in read_manifest() if e.mode == "lite"]
    if not any(e.backend == "onnx" for e in lite):
        pytest.skip("no exported lite model listed")
    assert (pick_entry("lite", "cpu").backend, pick_entry("lite", "cpu").precision) == (
        "onnx",
        "fp32",
    )
    assert pick_entry("lite", "cuda").backend == "torch"
    for e in lite:
        if e.backend == "onnx":
            assert pick_entry("lite", "cpu", e.precision).name == e.name
    with pytest.raises(UserError, match="cannot run in fp32"):
        load_swapper(next(e.name for e in lite if e.precision == "int8"), "cpu", "fp32")


@pytest.fixture
def models_copy(tmp_path, monkeypatch):
    """A copy of models/ that the registry reads instead (SLIMSWAP_MODELS)."""
    shutil.copytree(MODELS_DIR, tmp_path / "models")
    monkeypatch.setenv("SLIMSWAP_MODELS", str(tmp_path / "models"))
    return tmp_path / "models"


def _edit_entry(models, name: str, **changes) -> None:
    path = models / "MANIFEST"
    data = json.loads(path.read_text())
    for e in data["models"]:
        if e["name"] == name:
            e.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"template": "insightface arcface_112_v2"}, "aligned to"),
        ({"normalisation": "RGB in [0, 1]"}, "expects input"),
        ({"resolution": 64}, "says 64"),
        ({"sha256": "0" * 64}, "corrupted"),
    ],
)
def test_manifest_fields_are_checked_against_the_files(models_copy, change, message):
    for entry in read_manifest():
        _edit_entry(models_copy, entry.name, **change)
        with pytest.raises(UserError, match=message):
            load_swapper(entry.name, "cpu")


def test_wrong_precision_or_missing_field_is_refused(models_copy):
    torch_entry = next(e for e in read_manifest() if e.backend == "torch")
    _edit_entry(models_copy, torch_entry.name, precision="fp32")
    with pytest.raises(UserError, match="holds fp16 weights"):
        load_swapper(torch_entry.name, "cpu")
    data = json.loads((models_copy / "MANIFEST").read_text())
    swap_entry = next(e for e in data["models"] if e["name"] == torch_entry.name)
    del swap_entry["template"]
    (models_copy / "MANIFEST").write_text(json.dumps(data))
    with pytest.raises(UserError, match="lacks template"):
        read_manifest()


def test_auto_picks_only_a_learned_model_that_met_its_targets(models_copy):
    data = json.loads((models_copy / "MANIFEST").read_text())
    learned = [e for e in data["models"] if e["mode"] in ("lite", "quality")]
    for e in learned:
        e["auto"] = False
    (models_copy / "MANIFEST").write_text(json.dumps(data))
    assert resolve_mode("auto", "cpu") == "classic"  # nothing met its targets
    for mode in ("quality", "lite"):  # lite is preferred once it qualifies
        _edit_entry(models_copy, next(e["name"] for e in learned if e["mode"] == mode), auto=True)
        assert resolve_mode("auto", "cpu") == mode


def test_auto_choice_names_the_model_and_why_for_each_use(models_copy):
    """One source for what `auto` means: the mode, the listed file that runs and the reason,
    for swap and for live, which on a CPU takes lite where it is installed."""
    from slimswap.swap.registry import WHY_CLASSIC, WHY_CLEARED, WHY_LIVE_CPU, auto_choice

    data = json.loads((models_copy / "MANIFEST").read_text())
    for e in data["models"]:
        e["auto"] = e["name"] == "teacher_256"
    (models_copy / "MANIFEST").write_text(json.dumps(data))
    swap = auto_choice("cpu")
    assert (swap.mode, swap.model, swap.reason) == ("quality", "teacher_256_fp32", WHY_CLEARED)
    assert swap.line() == f"auto on this machine (cpu): quality (teacher_256_fp32) - {WHY_CLEARED}"
    live = auto_choice("cpu", live=True)
    assert (live.mode, live.model, live.reason) == ("lite", "lite_256_fp32", WHY_LIVE_CPU)
    assert auto_choice("cuda", live=True).mode == "quality"  # a GPU keeps pace with quality
    assert resolve_mode("auto", "cpu", live=True) == "lite"
    _edit_entry(models_copy, "teacher_256", auto=False)
    assert (auto_choice("cpu").mode, auto_choice("cpu").reason) == ("classic", WHY_CLASSIC)


def test_live_swapper_comes_from_the_registry_on_one_thread():
    import torch

    from slimswap.live import live_swapper
    from slimswap.swap.neural import OnnxSwapper

    threads = torch.get_num_threads()
    try:
        swapper = live_swapper("lite", "cpu")
        assert isinstance(swapper, OnnxSwapper) and swapper.name == pick_entry("lite", "cpu").name
        assert swapper.session.get_session_options().intra_op_num_threads == 1
    finally:
        torch.set_num_threads(threads)
