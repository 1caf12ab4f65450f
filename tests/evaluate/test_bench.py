"""`slimswap bench`: the quick CPU run on the bundled clip, and the manifest-driven rows.

Timings are never asserted; what is asserted is that every field is measured (finite), that
counts match the input, and that the report files exist and are readable.
"""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import onnx
import pytest
from helpers import run_cli, run_report
from onnx import TensorProto, helper

from slimswap.errors import UserError
from slimswap.evaluate import bench, report
from slimswap.face.align import TEMPLATE_NAME
from slimswap.files import sha256_file
from slimswap.swap import registry
from slimswap.swap.neural import PM1, from_model_output, to_model_input


def test_quick_bench_cli_fills_every_field_with_finite_numbers(tmp_path):
    data = run_report(
        tmp_path / "bench-cpu-quick.json",
        *("bench", "--quick", "--mode", "classic", "--max-frames", 12, "--batch", 4),
        *("--out", tmp_path),
    )
    env = data["environment"]
    assert env["device"] == "cpu" and env["cpu_cores"] >= 1
    assert {"python", "torch", "onnxruntime", "dlib-bin"} <= set(env["versions"])
    assert data["command"].startswith("slimswap bench --quick --mode classic")

    (row,) = data["models"]
    assert (row["name"], row["backend"], row["batch"]) == ("classic", "numpy", 4)
    assert row["b1_repeats"] >= bench.MIN_REPEATS and row["batch_repeats"] >= bench.MIN_REPEATS
    assert 0 < row["b1_p50_ms"] <= row["b1_p95_ms"]
    assert row["throughput_faces_s"] == pytest.approx(4000.0 / row["batch_p50_ms"])
    (video,) = row["videos"]
    assert video["video"] == "clip.mp4" and (video["width"], video["height"]) == (512, 512)
    assert (
        video["frames"] == 12 and video["frames_swapped"] == 12
    )  # one face on every frame of the clip
    stages = video["stage_ms_per_frame"]
    assert set(bench.STAGES) <= set(stages)
    assert all(stages[s] > 0 for s in bench.STAGES)
    assert video["bottleneck"] in stages
    assert video["peak_rss_mib"] > 50
    (cold,) = data["cold_start"]
    assert cold["mode"] == "classic" and cold["seconds_p50"] > 0 and cold["peak_rss_mib"] > 50

    md = (tmp_path / "bench-cpu-quick.md").read_text()
    assert "| classic | numpy | cpu |" in md and "clip.mp4" in md and data["command"] in md
    for png in ("bench-cpu-quick.png", "bench-cpu-quick-stages.png"):
        image = cv2.imread(str(tmp_path / png))
        assert image is not None and image.shape[0] > 100 and image.shape[1] > 300


def test_bench_refuses_cuda_without_a_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = run_cli("bench", "--quick", "--device", "cuda", "--out", tmp_path)
    assert proc.returncode == 2
    assert (
        proc.stderr.startswith("error:")
        and "no CUDA GPU" in proc.stderr
        and "Traceback" not in proc.stderr
    )


def _tiny_onnx(path, resolution: int = 128) -> None:
    """A stand-in generator with the real I/O contract: swap = 0.5 * target."""
    target = helper.make_tensor_value_info(
        "target", TensorProto.FLOAT, ["N", 3, resolution, resolution]
    )
    identity = helper.make_tensor_value_info("identity", TensorProto.FLOAT, ["N", 128])
    swap = helper.make_tensor_value_info(
        "swap", TensorProto.FLOAT, ["N", 3, resolution, resolution]
    )
    half = helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["target", "half"], ["swap"])],
        "tiny",
        [target, identity],
        [swap],
        [half],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    """An empty model folder for swap models, with the face-analysis nets linked in."""
    from slimswap.paths import MODELS_DIR

    manifest = json.loads((MODELS_DIR / "MANIFEST").read_text())
    analysis = [e for e in manifest["models"] if e["mode"] == "analysis"]
    for e in analysis:
        (tmp_path / e["file"]).symlink_to(MODELS_DIR / e["file"])
    (tmp_path / "MANIFEST").write_text(json.dumps({"models": analysis}))
    monkeypatch.setenv("SLIMSWAP_MODELS", str(tmp_path))
    return tmp_path


def _tiny_entry(models_dir, sha256: str | None = None) -> dict:
    _tiny_onnx(models_dir / "tiny.onnx")
    return {
        "name": "tiny",
        "file": "tiny.onnx",
        "sha256": sha256 or sha256_file(models_dir / "tiny.onnx"),
        "mode": "lite",
        "backend": "onnx",
        "resolution": 128,
        "params": 1,
        "precision": "fp32",
        "template": TEMPLATE_NAME,
        "normalisation": PM1.name,
    }


def test_manifest_onnx_model_gets_a_measured_row(models_dir):
    registry.write_manifest_entry(_tiny_entry(models_dir))
    cfg = bench.BenchConfig(modes=("lite",), quick=True, batch=3)
    (variant,) = bench.variants(cfg)
    assert (variant.name, variant.backend, variant.device, variant.entry) == (
        "tiny onnx cpu",
        "onnx",
        "cpu",
        "tiny",
    )
    # classic is a row only when asked for (or when no --mode is given)
    assert [v.name for v in bench.variants(bench.BenchConfig(quick=True))] == [
        "classic",
        "tiny onnx cpu",
    ]

    swapper = variant.load()
    inputs = bench.BenchInputs(bench.DEFAULT_SOURCE, bench.BUNDLED_CLIP, 2)
    crops, _ = inputs.crops(128, 2)
    out = swapper.swap(crops, inputs.identity(128))
    assert np.array_equal(
        out, from_model_output(0.5 * to_model_input(crops))
    )  # the graph really ran

    row = bench.bench_model(variant, cfg, inputs)
    numbers = {
        k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    assert all(math.isfinite(v) for v in numbers.values())
    assert (
        row["resolution"] == 128
        and row["params"] == 1
        and row["file_mib"] > 0
        and row["batch"] == 3
    )


def test_missing_or_corrupted_models_are_user_errors(models_dir):
    with pytest.raises(UserError, match="no quality model"):
        bench.variants(bench.BenchConfig(modes=("quality",)))
    registry.write_manifest_entry(_tiny_entry(models_dir, sha256="0" * 64))
    (variant,) = bench.variants(bench.BenchConfig(modes=("lite",)))
    with pytest.raises(UserError, match="corrupted"):
        variant.load()


def test_time_calls_keeps_minimum_repeats_and_percentiles_are_in_ms():
    calls = []
    times = bench.time_calls(
        lambda: calls.append(1), warmup=2, repeats=50, budget_s=0.0, cuda=False
    )
    assert len(times) == bench.MIN_REPEATS and len(calls) == 2 + bench.MIN_REPEATS
    p50, p95 = bench.percentiles_ms(np.arange(1, 101) / 1000.0)
    assert p50 == pytest.approx(50.5) and p95 == pytest.approx(95.05)


def test_json_writer_turns_non_finite_numbers_into_reported_nulls(tmp_path):
    data = {
        "a": np.float32(1.5),
        "b": [1, float("nan")],
        "c": {"d": float("inf"), "e": np.int64(3)},
    }
    report.write_json(tmp_path / "x.json", data)
    back = json.loads((tmp_path / "x.json").read_text())
    assert back == {"a": 1.5, "b": [1, None], "c": {"d": None, "e": 3}}
    assert report.missing_fields(back) == ["b[1]", "c.d"]
