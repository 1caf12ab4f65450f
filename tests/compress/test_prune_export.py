"""Compression tools on small generators and real face crops (no trained weights needed)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from slimswap.compress import export, quantize
from slimswap.compress.prune import prune_iteratively
from slimswap.compress.sensitivity import analyse, protected_layers
from slimswap.nets.generator import TeacherConfig, TeacherGenerator
from slimswap.nets.student import StudentConfig, StudentGenerator
from slimswap.swap.neural import to_model_input


@pytest.fixture(scope="module")
def face_batches():
    """Two batches of real aligned crops (bundled examples + clip frames) with dlib identities."""
    from slimswap import media
    from slimswap.face.align import align
    from slimswap.face.analyser import FaceAnalyser
    from slimswap.paths import EXAMPLES_DIR

    fa = FaceAnalyser()
    frames = [
        media.read_image(EXAMPLES_DIR / "grace_hopper.jpg"),
        media.read_image(EXAMPLES_DIR / "astronaut.png"),
    ]
    frames += [f for b in media.read_frames(EXAMPLES_DIR / "clip.mp4", 8) for f in b][::20]
    crops, embs = [], []
    for frame in frames[:8]:
        face = fa.embed(frame, max(fa.detect(frame), key=lambda f: f.area))
        crops.append(align(frame, face.kps, 128)[0])
        embs.append(face.embedding)
    crops, embs = np.stack(crops), np.stack(embs).astype(np.float32)
    x = to_model_input(torch.from_numpy(crops))
    e = torch.from_numpy(embs)
    other = torch.roll(e, 1, 0)
    return crops, embs, [(x[:4], other[:4], e[:4]), (x[4:], other[4:], e[4:])]


def small_teacher() -> TeacherGenerator:
    torch.manual_seed(0)
    return TeacherGenerator(TeacherConfig(base=16, deep=32, n_blocks=2)).eval()


def test_pruning_reaches_requested_macs_and_keeps_graph_valid(face_batches, tmp_path):
    _, _, batches = face_batches
    model = small_teacher()
    result = prune_iteratively(model, batches, target_ratio=0.5, finetune_steps=2)
    assert result.macs / result.base_macs <= 0.5
    assert all(s.macs_ratio < 1 for s in result.steps)
    x, e, _ = batches[0]
    out = result.model(x, e)
    assert out.shape == x.shape and torch.isfinite(out).all()
    path = export.to_onnx(result.model, tmp_path / "pruned.onnx")
    check = export.validate(result.model, path, x.numpy(), e.numpy())
    assert check["max_abs_error"] < 1e-4
    # each step removed at most ~10 % of the channels of any pruned layer
    ratios = [1.0] + [s.params_ratio for s in result.steps]
    assert all(a - b < 0.25 for a, b in itertools.pairwise(ratios))


def test_protected_layers_stay_whole(face_batches):
    _, _, batches = face_batches
    model = small_teacher()
    result = prune_iteratively(
        model, batches, target_ratio=0.6, finetune_steps=0, protected=["down2.0", "fuse32"]
    )
    assert result.model.down2[0].out_channels == model.down2[0].out_channels
    assert result.model.fuse32.out_channels == model.fuse32.out_channels
    assert result.model.up1[1].out_channels < model.up1[1].out_channels


def test_sensitivity_table_covers_every_conv(face_batches):
    _, _, batches = face_batches
    rows = analyse(small_teacher(), batches[:1], progress=False)
    names = {r.name for r in rows}
    assert {"stem.0", "down1.0", "fuse32", "up1.1"} <= names
    for r in rows:
        assert 0 <= r.saliency <= 1
        # cutting more channels never helps
        assert r.psnr_db[0.1] >= r.psnr_db[0.5] - 0.5
    assert set(protected_layers(rows, protect_below_db=1000)) == names
    assert protected_layers(rows, protect_below_db=0) == []


def test_int8_keeps_sensitive_nodes_float(face_batches, tmp_path):
    """Also: the INT8 file cannot saturate on CPUs without VNNI, and agrees with fp32 here.

    Which kernel ONNX Runtime runs depends on the CPU (VNNI: int32 accumulation; AVX2 alone:
    a saturating int16 pair sum), so every message names the CPU features it ran with.
    """
    from slimswap.evaluate.report import cpu_features, cpu_name

    cpu = f"{cpu_name()}, " + ", ".join(
        f"{k} {'yes' if v else 'no'}" for k, v in cpu_features().items()
    )
    crops, embs, _ = face_batches
    torch.manual_seed(0)
    student = StudentGenerator(StudentConfig(base=16, deep=32, n_blocks=2, attn_dim=16)).eval()
    fp32 = export.to_onnx(student, tmp_path / "s.onnx")
    int8, excluded = quantize.quantize_int8(fp32, tmp_path / "s_int8.onnx", crops, embs)
    import onnx

    ops = {n.name: n.op_type for n in onnx.load(str(int8)).graph.node}
    assert any(
        op in ("MatMul", "Softmax") for op in (ops.get(n) for n in excluded)
    )  # attention listed
    assert any(ops.get(n) == "InstanceNormalization" for n in excluded)
    assert any("fuse32" in n for n in excluded)
    floats = quantize.float_nodes_in_qdq(int8, excluded)
    assert floats and all(floats.values()), [n for n, ok in floats.items() if not ok]
    # and the other convolutions really were quantized
    quantized = [n for n, op in ops.items() if op == "Conv" and n not in excluded]
    assert quantized and not any(quantize.float_nodes_in_qdq(int8, quantized).values())
    # 7-bit weights: two uint8 x int8 products always fit VPMADDUBSW's saturating int16
    assert quantize.int8_weight_range(int8) <= quantize.NO_SATURATION_WEIGHT, cpu
    x = to_model_input(crops)
    a, b = export.run_onnx(fp32, x, embs), export.run_onnx(int8, x, embs)
    psnr = export.psnr_pm1(a, b)
    print(f"\nINT8 vs fp32: {psnr:.1f} dB on {cpu}")
    assert psnr > 30, f"{psnr:.1f} dB on {cpu}"
