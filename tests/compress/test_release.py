"""One release path for every kind of model file, on a tiny generator in a scratch models/:
torch weights, an fp16-stored ONNX export checked against them, the auto flag and unlisting."""

from __future__ import annotations

import json

import pytest
import torch

from slimswap.compress import export, release
from slimswap.compress.data import as_numpy
from slimswap.errors import UserError
from slimswap.nets.warp_generator import SwapGeneratorConfig, WarpSwapGenerator

TINY_STUDENT = SwapGeneratorConfig(
    resolution=64, widths=(8, 8, 16, 16, 16), n_blocks=1, separable=True, attention_dim=8
)


@pytest.fixture
def models(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("SLIMSWAP_MODELS", str(folder))
    return folder


def test_weights_then_fp16_storage_export_then_auto_then_unlist(models, tmp_path, tiny_batches):
    from slimswap.swap.registry import load_swapper, read_manifest, resolve_mode
    from slimswap.swap.weights import save_generator

    torch.manual_seed(0)
    model = WarpSwapGenerator(TINY_STUDENT).eval()
    src = save_generator(model, tmp_path / "student.safetensors")
    name = release.release_name("lite", 64)
    assert (name, release.release_name("quality", 256)) == ("lite_64", "teacher_256")
    entry = release.release_weights_file(src, name, "lite", {"data": "the bundled faces"})
    assert (entry["backend"], entry["mode"], entry["file"]) == (
        "torch",
        "lite",
        "lite_64.safetensors",
    )
    assert entry["provenance"]["licence"] == release.LICENCE

    fp32 = export.to_onnx(model, tmp_path / "lite_64_fp32.onnx")
    inputs = as_numpy(tiny_batches[0].swap)
    onnx_entry, check = release.release_fp16_storage(
        models / "lite_64.safetensors", fp32, name, inputs, "test"
    )
    assert check["max_abs_error"] < 1e-4
    assert (onnx_entry["name"], onnx_entry["backend"], onnx_entry["precision"]) == (
        "lite_64_fp32",
        "onnx",
        "fp32",
    )
    # what it was exported from: the torch entry's mode, size and provenance, plus how
    assert (onnx_entry["mode"], onnx_entry["params"]) == ("lite", entry["params"])
    assert onnx_entry["provenance"]["data"] == "the bundled faces"
    assert "fp16" in onnx_entry["provenance"]["storage"]
    assert onnx_entry["metrics"]["export"]["check_faces"] == len(inputs["target"])
    assert load_swapper("lite_64_fp32").resolution == 64

    assert resolve_mode("auto", "cpu") == "classic"
    release.set_auto(name)
    assert resolve_mode("auto", "cpu") == "lite"
    order = [e["name"] for e in json.loads((models / "MANIFEST").read_text())["models"]]
    assert order == ["lite_64", "lite_64_fp32"]  # set in place

    assert release.unlist(["lite_64_fp32"], delete_files=True) == ["lite_64_fp32"]
    assert not (models / "lite_64_fp32.onnx").exists()
    assert [e.name for e in read_manifest()] == ["lite_64"]
    with pytest.raises(UserError, match="release it first"):
        release.listed_entry(tmp_path / "lite_64_fp32.onnx")


def test_release_tool_speaks_the_error_contract(models):
    """tools/release.py: a bad request is one line on stderr and exit code 2."""
    import subprocess
    import sys

    from slimswap.paths import REPO_ROOT

    (models / "MANIFEST").write_text(json.dumps({"models": []}))
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "release.py"), "auto", "no_such_model"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"error: 'no_such_model' is not listed in {models / 'MANIFEST'}"
    ]
