"""A missing or corrupted face-analysis model is the user's to fix: one line, exit code 2.

The models folder is copied to a temporary one (the real files are never touched, other
tests may be reading them) and SLIMSWAP_MODELS points there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slimswap.errors import UserError
from slimswap.face import detect_mediapipe
from slimswap.face.analyser import FaceAnalyser
from slimswap.paths import EXAMPLES_DIR, MODELS_DIR

FACE = EXAMPLES_DIR / "grace_hopper.jpg"


def _analysis_files() -> dict[tuple[str, str], str]:
    entries = json.loads((MODELS_DIR / "MANIFEST").read_text())["models"]
    return {(e["kind"], e["backend"]): e["file"] for e in entries if e["mode"] == "analysis"}


@pytest.fixture
def models_copy(tmp_path: Path) -> Path:
    """MANIFEST and the analysis models, copied."""
    shutil.copy(MODELS_DIR / "MANIFEST", tmp_path / "MANIFEST")
    for name in _analysis_files().values():
        shutil.copy(MODELS_DIR / name, tmp_path / name)
    return tmp_path


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _detect_cli(models: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SLIMSWAP_MODELS": str(models)}
    return subprocess.run(
        [sys.executable, "-m", "slimswap.cli", "detect", str(FACE), *args],
        check=False, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip


def _assert_one_line_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert fragment in lines[0] and "Traceback" not in proc.stderr


def test_missing_analysis_model_is_a_one_line_error_with_exit_code_2(models_copy):
    (models_copy / _analysis_files()["face_mesh", "onnx"]).unlink()
    _assert_one_line_error(_detect_cli(models_copy), "missing")


def test_corrupted_analysis_model_is_a_one_line_error_with_exit_code_2(models_copy):
    _corrupt(models_copy / _analysis_files()["blazeface_full", "onnx"])
    _assert_one_line_error(_detect_cli(models_copy), "corrupted")


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_every_runtime_checks_the_hash_before_loading(models_copy, monkeypatch, runtime):
    monkeypatch.setenv("SLIMSWAP_MODELS", str(models_copy))
    backend = "onnx" if runtime == "onnx" else "torch"
    _corrupt(models_copy / _analysis_files()["face_mesh", backend])
    analyser = FaceAnalyser(runtime=runtime)
    from slimswap import media

    with pytest.raises(UserError, match="corrupted"):
        analyser.detect(media.read_image(FACE))


def test_missing_manifest_entry_says_how_to_restore(models_copy, monkeypatch):
    monkeypatch.setenv("SLIMSWAP_MODELS", str(models_copy))
    data = json.loads((models_copy / "MANIFEST").read_text())
    data["models"] = [e for e in data["models"] if e.get("kind") != "blazeface_full"]
    (models_copy / "MANIFEST").write_text(json.dumps(data))
    with pytest.raises(UserError, match="git checkout"):
        detect_mediapipe.analysis_model_path("blazeface_full", "onnx")


def test_dlib_backend_needs_no_analysis_model(models_copy):
    (models_copy / "MANIFEST").unlink()
    proc = _detect_cli(models_copy, "--detector", "dlib")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["faces"]) == 1
