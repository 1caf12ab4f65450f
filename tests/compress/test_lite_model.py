"""The shipped lite model: ONNX exports agree with torch, INT8 keeps its sensitive paths float."""

from __future__ import annotations

import numpy as np
import pytest

from slimswap.compress import export, quantize
from slimswap.paths import EXAMPLES_DIR, MODELS_DIR
from slimswap.swap.neural import to_model_input
from slimswap.swap.weights import load_generator

LITE = MODELS_DIR / "lite_128.safetensors"
FP32 = MODELS_DIR / "lite_128_fp32.onnx"
INT8 = MODELS_DIR / "lite_128_int8.onnx"


@pytest.fixture(scope="module")
def real_inputs(analyser):
    """Aligned crops of real faces (bundled examples + clip frames) and other faces' identities."""
    from slimswap import media
    from slimswap.face.align import align

    frames = [
        media.read_image(EXAMPLES_DIR / "grace_hopper.jpg"),
        media.read_image(EXAMPLES_DIR / "astronaut.png"),
    ]
    frames += [f for b in media.read_frames(EXAMPLES_DIR / "clip.mp4", 8) for f in b][::15]
    crops, embs = [], []
    for frame in frames:
        face = analyser.embed(frame, max(analyser.detect(frame), key=lambda f: f.area))
        crops.append(align(frame, face.kps, 128)[0])
        embs.append(face.embedding)
    x = to_model_input(np.stack(crops))
    e = np.roll(np.stack(embs).astype(np.float32), 1, axis=0)
    return x, e


def test_onnx_fp32_matches_torch(real_inputs):
    x, e = real_inputs
    check = export.validate(load_generator(LITE), FP32, x, e)
    assert check["max_abs_error"] < 1e-4


def test_int8_agrees_with_fp32_on_real_faces(real_inputs):
    x, e = real_inputs
    psnr = export.psnr_pm1(export.run_onnx(INT8, x, e), export.run_onnx(FP32, x, e))
    assert psnr >= 35.0, psnr


def test_int8_graph_keeps_attention_norm_identity_skip_float():
    import onnx

    graph = onnx.load(str(INT8)).graph
    float_types = {"MatMul", "Softmax", "InstanceNormalization", "Gemm"}
    sensitive = [
        n.name
        for n in graph.node
        if n.op_type in float_types
        or (n.op_type == "Conv" and any(p in n.name + "/" for p in quantize.SENSITIVE_CONV_PARTS))
    ]
    kinds = {n.op_type for n in graph.node if n.name in sensitive}
    assert {"MatMul", "Softmax", "InstanceNormalization"} <= kinds
    assert any("/fuse32/" in n for n in sensitive) and any("/fusion/" in n for n in sensitive)
    status = quantize.float_nodes_in_qdq(INT8, sensitive)
    assert all(status.values()), [n for n, ok in status.items() if not ok]
    other_convs = [n.name for n in graph.node if n.op_type == "Conv" and n.name not in sensitive]
    assert len(other_convs) >= 10
    assert not any(quantize.float_nodes_in_qdq(INT8, other_convs).values())  # really INT8


def test_lite_is_a_fraction_of_the_teacher():
    from slimswap.swap.registry import read_manifest

    by_name = {e.name: e for e in read_manifest()}
    teacher, lite = by_name["teacher_128"], by_name["lite_128"]
    teacher_fp32_bytes = teacher.params * 4
    assert INT8.stat().st_size <= 0.10 * teacher_fp32_bytes
    assert lite.macs <= 0.25 * teacher.macs


def test_released_exports_are_listed_and_load(tmp_path, monkeypatch):
    """`compress export --release`: the three files go into the manifest with their hash,
    precision and the torch model's provenance, and the registry loads them."""
    import json
    import shutil

    from slimswap.compress.release import release_exports
    from slimswap.swap.registry import load_swapper, read_manifest

    shutil.copytree(MODELS_DIR, tmp_path / "models")
    monkeypatch.setenv("SLIMSWAP_MODELS", str(tmp_path / "models"))
    data = json.loads((tmp_path / "models" / "MANIFEST").read_text())
    data["models"] = [e for e in data["models"] if e["backend"] == "torch"]
    (tmp_path / "models" / "MANIFEST").write_text(json.dumps(data))
    report = json.loads((MODELS_DIR / "lite_128_export.json").read_text())
    report["int8"]["psnr_vs_onnx_fp32_db"] = 40.0
    release_exports(
        tmp_path / "models" / "lite_128.safetensors", "lite_128", report, "slimswap compress export"
    )
    by_name = {e.name: e for e in read_manifest()}
    for precision in ("fp32", "fp16", "int8"):
        entry = by_name[f"lite_128_{precision}"]
        assert (entry.backend, entry.precision, entry.mode) == ("onnx", precision, "lite")
        assert entry.provenance["steps"] == by_name["lite_128"].provenance["steps"]
        assert load_swapper(entry.name).resolution == 128
    assert "reduce_range" in by_name["lite_128_int8"].provenance["quantization"]
