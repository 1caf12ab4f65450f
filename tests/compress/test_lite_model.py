"""The shipped lite model: ONNX exports agree with torch on real faces (guides built by the
inference path), INT8 keeps its measured-sensitive Convs float, the manifest describes it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slimswap.compress import export, quantize
from slimswap.paths import MODELS_DIR
from slimswap.swap.weights import load_generator

LITE = MODELS_DIR / "lite_256.safetensors"
FP32 = MODELS_DIR / "lite_256_fp32.onnx"
FP16 = MODELS_DIR / "lite_256_fp16.onnx"
INT8 = MODELS_DIR / "lite_256_int8.onnx"


@pytest.fixture(scope="module")
def fp32_swaps(guided_inputs) -> np.ndarray:
    return export.run_onnx(FP32, guided_inputs)


def test_onnx_files_take_target_guide_identity():
    for path in (FP32, FP16, INT8):
        inputs = export.session(path).get_inputs()
        assert [i.name for i in inputs] == ["target", "guide", "identity"], path.name
        assert [i.shape[1:] for i in inputs] == [[3, 256, 256], [4, 256, 256], [128]]
        assert all(isinstance(i.shape[0], str) for i in inputs), "batch must be dynamic"


def test_onnx_fp32_matches_torch(guided_inputs):
    check = export.validate(load_generator(LITE), FP32, guided_inputs)
    assert check["max_abs_error"] < 1e-4, check


def test_onnx_fp16_is_close_to_fp32(guided_inputs, fp32_swaps):
    psnr = export.psnr_pm1(export.run_onnx(FP16, guided_inputs), fp32_swaps)
    assert psnr >= 60.0, psnr


def test_int8_agrees_with_fp32_on_real_faces(guided_inputs, fp32_swaps):
    int8 = export.run_onnx(INT8, guided_inputs)
    face = export.face_weight(guided_inputs)
    assert export.psnr_pm1(int8, fp32_swaps) >= 35.0
    assert export.psnr_pm1(int8, fp32_swaps, face) >= 38.0


def test_int8_graph_keeps_sensitive_nodes_float():
    import onnx

    graph = onnx.load(str(INT8)).graph
    convs = [n.name for n in graph.node if n.op_type == "Conv"]
    sensitive = [
        n.name
        for n in graph.node
        if n.op_type in quantize.FLOAT_OP_TYPES
        or (n.op_type == "Conv" and any(p in n.name + "/" for p in quantize.SENSITIVE_CONV_PARTS))
    ]
    kinds = {n.op_type for n in graph.node if n.name in sensitive}
    assert {"MatMul", "Softmax", "InstanceNormalization", "Gemm"} <= kinds
    for part in quantize.SENSITIVE_CONV_PARTS:
        assert any(part in n for n in sensitive if n in convs), part
    status = quantize.float_nodes_in_qdq(INT8, sensitive)
    assert all(status.values()), [n for n, ok in status.items() if not ok]
    other_convs = [n for n in convs if n not in sensitive]
    assert len(other_convs) >= 30
    assert not any(quantize.float_nodes_in_qdq(INT8, other_convs).values())  # really INT8
    assert quantize.int8_weight_range(INT8) <= quantize.NO_SATURATION_WEIGHT


def test_lite_is_a_fraction_of_the_teacher():
    from slimswap.swap.registry import read_manifest

    by_name = {e.name: e for e in read_manifest()}
    teacher, lite = by_name["quality_256"], by_name["lite_256"]
    teacher_fp32_bytes = teacher.params * 4
    for name in ("lite_256", "lite_256_fp32", "lite_256_fp16", "lite_256_int8"):
        assert by_name[name].path.stat().st_size <= 0.10 * teacher_fp32_bytes, name
    assert lite.macs <= 0.10 * teacher.macs


def test_manifest_describes_inputs_licence_and_provenance():
    from slimswap.swap.registry import read_manifest

    entries = [e for e in read_manifest() if e.resolution == 256]
    assert {e.name for e in entries} >= {
        "quality_256",
        "lite_256",
        "lite_256_fp32",
        "lite_256_fp16",
        "lite_256_int8",
    }
    for e in entries:
        assert "dlib" in e.normalisation and "guide" in e.normalisation, e.name
        assert e.provenance["licence"].startswith("research use only"), e.name
        assert "LFW" in e.provenance["data"] and "CelebA" in e.provenance["data"], e.name
        assert "gpu_session" in e.provenance["source"], e.name
        assert e.params > 0 and e.macs > 0 and e.bytes == e.path.stat().st_size, e.name


def test_released_exports_are_listed_and_load(tmp_path, monkeypatch):
    """`compress export --release`: the three files go into the manifest with their hash,
    precision and the torch model's provenance, and the registry loads them."""
    import shutil

    from slimswap.compress.release import release_exports
    from slimswap.swap.registry import load_swapper, read_manifest

    shutil.copytree(MODELS_DIR, tmp_path / "models")
    monkeypatch.setenv("SLIMSWAP_MODELS", str(tmp_path / "models"))
    data = json.loads((tmp_path / "models" / "MANIFEST").read_text())
    data["models"] = [e for e in data["models"] if e["backend"] == "torch"]
    (tmp_path / "models" / "MANIFEST").write_text(json.dumps(data))
    report = json.loads((MODELS_DIR / "lite_256_export.json").read_text())
    report["int8"]["psnr_vs_onnx_fp32_db"] = 40.0
    metrics = {"int8": {"compression_report": {"cpu_ms_median_2_threads": 1.0}}}
    release_exports(
        tmp_path / "models" / "lite_256.safetensors",
        "lite_256",
        report,
        "slimswap compress export",
        metrics,
    )
    by_name = {e.name: e for e in read_manifest()}
    for precision in ("fp32", "fp16", "int8"):
        entry = by_name[f"lite_256_{precision}"]
        assert (entry.backend, entry.precision, entry.mode) == ("onnx", precision, "lite")
        assert entry.provenance["commands"] == by_name["lite_256"].provenance["commands"]
        swapper = load_swapper(entry.name)
        assert swapper.resolution == 256 and swapper.guided
    int8 = by_name["lite_256_int8"]
    assert "reduce_range" in int8.provenance["quantization"]
    assert int8.metrics["export"]["int8_vs_fp32_psnr_db"] == 40.0
    assert int8.metrics["compression_report"]["cpu_ms_median_2_threads"] == 1.0


def test_unlist_and_summary_leave_the_other_entries(tmp_path, monkeypatch):
    """The release helpers edit one entry or section of models/MANIFEST and nothing else."""
    import shutil

    from slimswap.compress.release import unlist, write_compression_summary

    shutil.copytree(MODELS_DIR, tmp_path / "models")
    monkeypatch.setenv("SLIMSWAP_MODELS", str(tmp_path / "models"))
    before = json.loads((tmp_path / "models" / "MANIFEST").read_text())["models"]
    assert unlist(["lite_256_fp16", "no_such_model"]) == ["lite_256_fp16"]
    report = tmp_path / "compression.json"
    row = {
        "name": "student int8",
        "file": "lite_256_int8.onnx",
        "backend": "onnx",
        "precision": "int8",
        "bytes": 1,
        "params": 2,
        "macs": 3,
        "cpu_ms": 10.04,
        "cpu_ms_1_thread": 12.0,
        "psnr_vs_teacher_db": None,
        "face_psnr_vs_teacher_db": 29.512,
    }
    context = {"started": "now", "load_average_before": [1, 1, 1], "threads": 2}
    report.write_text(json.dumps({"context": context, "rows": [row]}))
    write_compression_summary(report)
    data = json.loads((tmp_path / "models" / "MANIFEST").read_text())
    assert [e["name"] for e in data["models"]] == [
        e["name"] for e in before if e["name"] != "lite_256_fp16"
    ]
    (summary_row,) = data["compression_summary"]["rows"]
    assert summary_row["cpu_ms_median"] == 10.0 and summary_row["psnr_vs_teacher_db"] is None
    assert summary_row["face_psnr_vs_teacher_db"] == 29.51
