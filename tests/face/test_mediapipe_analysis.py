"""MediaPipe face analysis against dlib on real faces: same faces, 68 points close to dlib's,
rotations, batching, tracking, both runtimes, and no dlib import on the GPU path."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from slimswap import media
from slimswap.evaluate.metrics import landmark_nme
from slimswap.face.analyser import FaceAnalyser, box_from_landmarks
from slimswap.face.select import iou
from slimswap.paths import EXAMPLES_DIR

pytestmark = pytest.mark.shared


def _iod(lm: np.ndarray) -> float:
    return float(np.linalg.norm(lm[36] - lm[45]))


@pytest.fixture(scope="module")
def deepface(shared_data, load_rgb, analyser_mp, analyser_dlib):
    """(name, frame, mediapipe faces, dlib faces) for every photo of the deepface test set
    (61 single-face photos, then 3 group photos), shrunk to 640 px."""
    root = shared_data / "deepface_testset"
    paths = sorted(root.glob("id*/*.jpg")) + sorted(root.glob("_unlabeled_multi_face/*.jpg"))
    out = []
    for p in paths:
        frame = load_rgb(p, max_side=640)
        out.append(
            (
                f"{p.parent.name}/{p.name}",
                frame,
                analyser_mp.detect(frame),
                analyser_dlib.detect(frame),
            )
        )
    return out


def test_both_backends_find_the_same_faces_on_the_deepface_set(deepface):
    """Tolerance: the same number of faces on every photo, and each dlib box overlapped by a
    MediaPipe box with IoU >= 0.5 (measured: min 0.69, median 0.86). MediaPipe's boxes are
    re-derived from its 68 points the way dlib's HOG boxes relate to dlib's points."""
    assert len(deepface) >= 60
    for name, _, mp_faces, dlib_faces in deepface:
        assert len(mp_faces) == len(dlib_faces), name
        for d in dlib_faces:
            assert max(iou(m.bbox, d.bbox) for m in mp_faces) >= 0.5, name


def test_68_point_map_lands_near_dlibs_points(deepface):
    """Mean NME (inter-ocular) vs dlib <= 0.045, every face <= 0.09; alignment keypoints
    <= 0.035 of the eye distance on average.

    Why these bounds: the fitted map measures 0.031 mean here (0.035 / 0.065 max before the
    jaw refit; held out from the fit). dlib disagrees with itself by 0.013 between a photo and its mirror image, the mesh by
    0.020, so two different landmark models cannot agree much closer than ~0.03; 0.045 is
    2 px at the 128 px crop, below what moves the swap (the template itself sits 1-2 px off
    for turned heads). The bound catches a broken map (the unfitted table scored 0.071).
    """
    nmes, kps = [], []
    for name, _, mp_faces, dlib_faces in deepface:
        for d in dlib_faces:
            m = max(mp_faces, key=lambda f: iou(f.bbox, d.bbox))
            nmes.append(landmark_nme(m.landmarks, d.landmarks))
            kps.append(np.linalg.norm(m.kps - d.kps, axis=1).mean() / _iod(d.landmarks))
            assert nmes[-1] <= 0.09, name
    assert np.mean(nmes) <= 0.045
    assert np.mean(kps) <= 0.035


def test_the_mapped_chin_sits_where_dlibs_does_on_a_talking_head(analyser_mp, analyser_dlib):
    """The jaw of the 68-point map follows dlib's silhouette, not the mesh's skin vertices:
    over every 6th frame of the bundled clip the mapped chin lies on average within 4 % of the
    face height of dlib's (measured: -0.025 after the jaw refit of issue 20; the table before
    it put the chin 0.064 too high, which made the quality swap close open mouths)."""
    from slimswap.evaluate.expression import face_height

    frames = [f for b in media.read_frames(EXAMPLES_DIR / "clip.mp4", 30) for f in b][::6]
    offsets = []
    for frame in frames:
        mp_faces, dlib_faces = analyser_mp.detect(frame), analyser_dlib.detect(frame)
        if mp_faces and dlib_faces:
            d = max(dlib_faces, key=lambda f: f.area)
            m = max(mp_faces, key=lambda f: iou(f.bbox, d.bbox))
            offsets.append((m.landmarks[8, 1] - d.landmarks[8, 1]) / face_height(d.landmarks))
    assert len(offsets) >= 15
    assert abs(np.mean(offsets)) <= 0.04, np.mean(offsets)


def test_dlib_embedding_of_a_face_barely_depends_on_the_backend(deepface, analyser_dlib):
    """`embed` (dlib's ResNet) aligns with the 68 points; with MediaPipe's points the same
    person's descriptor moves far less than dlib's same-person threshold (0.6)."""
    dists = []
    for _, frame, mp_faces, dlib_faces in deepface[:40:4]:
        d = dlib_faces[0]
        m = max(mp_faces, key=lambda f: iou(f.bbox, d.bbox))
        a, b = analyser_dlib.embed(frame, d).embedding, analyser_dlib.embed(frame, m).embedding
        dists.append(float(np.linalg.norm(a - b)))
    assert np.max(dists) < 0.25 and np.mean(dists) < 0.15


def test_group_photo_has_its_six_faces(shared_data, load_rgb, analyser_mp):
    frame = load_rgb(shared_data / "insightface_wheel_samples/t1.jpg", max_side=None)
    faces = analyser_mp.detect(frame)
    assert len(faces) == 6
    boxes = [f.bbox for f in faces]
    assert all(iou(a, b) < 0.1 for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def test_batch_gives_the_same_faces_as_single_frames(deepface, analyser_mp):
    frames = [deepface[0][1], deepface[-1][1], deepface[20][1]]
    batched = analyser_mp.detect_batch(frames)
    for frame, faces in zip(frames, batched):
        single = analyser_mp.detect(frame)
        assert len(single) == len(faces)
        for a, b in zip(single, faces):
            assert np.abs(a.landmarks - b.landmarks).max() < 1e-3


def _rotate(frame: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """The frame turned about its centre on a canvas that keeps all of it; (image, affine)."""
    h, w = frame.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), degrees, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * s + w * c), int(h * c + w * s)
    m[0, 2] += (nw - 1) / 2 - (w - 1) / 2
    m[1, 2] += (nh - 1) / 2 - (h - 1) / 2
    return cv2.warpAffine(frame, m, (nw, nh)), m


@pytest.mark.parametrize(
    "degrees, angles", [(35, (0,)), (90, (0, 90, 180, 270)), (180, (0, 90, 180, 270))]
)
def test_rolled_and_turned_faces_get_the_same_landmarks(deepface, degrees, angles):
    """Roll up to ~60 degrees needs nothing extra (the mesh ROI levels the eyes); lying and
    upside-down faces need the extra detector angles. Landmarks must match the upright
    photo's, turned, within NME 0.03 (measured <= 0.022)."""
    analyser = FaceAnalyser(angles=angles)
    for _, frame, mp_faces, _ in deepface[:30:6]:
        (upright,) = mp_faces
        turned, m = _rotate(frame, degrees)
        expected = upright.landmarks @ m[:, :2].T + m[:, 2]
        found = analyser.detect(turned)
        assert found, degrees
        best = min(found, key=lambda f: np.abs(f.landmarks.mean(0) - expected.mean(0)).sum())
        assert landmark_nme(best.landmarks, expected) < 0.03


def test_tracking_and_box_paths_agree_with_detection_on_a_video(analyser_mp):
    """A video's faces come from detection, from tracking (previous mesh) and from boxes
    (the pipeline's tracker); all three land on the same points (the mesh is refined on its
    own ROI), so the swap does not jump when the detector runs."""
    frames = [f for batch in media.read_frames(EXAMPLES_DIR / "clip.mp4", 8) for f in batch][:30:3]
    detected = analyser_mp.detect_batch(frames)
    tracked = analyser_mp.track_batch(frames[1:], [fs[:1] for fs in detected[:-1]])
    for det, trk, frame in zip(detected[1:], tracked, frames[1:]):
        assert landmark_nme(trk[0].landmarks, det[0].landmarks) < 0.03  # 3 frames of motion
        boxed = analyser_mp.face_from_box(frame, box_from_landmarks(det[0].landmarks), det[0].score)
        assert landmark_nme(boxed.landmarks, det[0].landmarks) < 0.03


def test_torch_runtime_matches_onnx_runtime(deepface, analyser_mp):
    """The torch path (what runs on CUDA: grid_sample warps, torch nets) gives the ONNX path's
    points on the CPU; they differ only by resampling (cv2 vs grid_sample and box-filter
    shrinking), which moves the mesh by about 0.01 NME (measured <= 0.0104)."""
    torch_analyser = FaceAnalyser(runtime="torch", precision="fp32")
    frames = [frame for _, frame, _, _ in deepface[:24:8]]
    for frame, t_faces, o_faces in zip(
        frames, torch_analyser.detect_batch(frames), analyser_mp.detect_batch(frames)
    ):
        assert len(t_faces) == len(o_faces)
        for t, o in zip(t_faces, o_faces):
            assert landmark_nme(t.landmarks, o.landmarks) < 0.02


def test_mediapipe_path_never_imports_dlib():
    """The GPU machine has no dlib: analysis (not embedding) must run with dlib unimportable."""
    code = (
        "import sys; sys.modules['dlib'] = None\n"
        "from slimswap import media\n"
        "from slimswap.face.analyser import FaceAnalyser\n"
        f"frame = media.read_image({str(EXAMPLES_DIR / 'grace_hopper.jpg')!r})\n"
        "fa = FaceAnalyser(runtime='torch', precision='fp32')\n"
        "faces = fa.detect_batch([frame])\n"
        "assert [len(f) for f in faces] == [1], faces\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
