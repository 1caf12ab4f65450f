"""MediaPipe face analysis: BlazeFace boxes, the 468-point mesh, its 68-point layout, 5 keypoints.

One code path, two runtimes: ONNX Runtime on the CPU (cv2 resamples the frames) and PyTorch
on CUDA (frames go to the GPU once as uint8 and are resampled there with grid_sample). Every
resampling is an affine warp to a square model input: the detector's letterbox (optionally
rotated by 90/180/270 degrees, or a tile of the frame), the mesh's rotated face ROI. Points
come back through the inverse of the same affine, so nothing is approximated twice.

The flow per batch of frames follows MediaPipe's face-mesh graph:
detector -> weighted NMS -> ROI (box x1.5, rotated so the eyes are level) -> mesh -> a
second mesh pass on the ROI the first mesh implies (MediaPipe's tracking ROI: detected,
boxed and tracked faces then land on the same points). Video frames between detections
need one mesh pass per face (`track_batch`). No dlib import anywhere here.

The geometry (detections, ROIs, affines, NMS) is in mediapipe_geometry.py; the model files
and the two runtimes in mediapipe_runtime.py; the Face record in record.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from slimswap.errors import UserError
from slimswap.face.mediapipe_geometry import (
    DETECTORS,
    MESH_SIZE,
    NMS_IOU,
    Detection,
    Roi,
    _apply,
    _box_iou,
    _invert,
    letterbox_affine,
    roi_affine,
    roi_from_box,
    roi_from_detection,
    roi_from_mesh,
    roi_moved,
    tile_windows,
    weighted_nms,
)
from slimswap.face.mediapipe_runtime import (
    OnnxRuntime,
    TorchRuntime,
    analysis_model_path,
    load_torch_net,
)
from slimswap.face.mesh_map import mesh_to_68
from slimswap.face.record import Face, box_from_landmarks, kps_from_landmarks

# the analyser, and the names of its two parts (mediapipe_geometry, mediapipe_runtime) that
# other modules import from here
__all__ = [
    "MESH_SIZE",
    "Detection",
    "MediaPipeAnalyser",
    "OnnxRuntime",
    "Roi",
    "TorchRuntime",
    "analysis_model_path",
    "face_from_mesh",
    "letterbox_affine",
    "load_torch_net",
    "roi_affine",
    "roi_from_box",
    "roi_from_detection",
    "roi_from_mesh",
    "roi_moved",
    "tile_windows",
    "weighted_nms",
]


class MediaPipeAnalyser:
    """Batched BlazeFace + face mesh; see the module docstring for the flow.

    detector: "full" (192 px, faces from about 20 px up; default) or "short" (128 px, faster,
    close-ups only). min_score: BlazeFace probability threshold. min_presence: the mesh's own
    face probability below which a detection is dropped (BlazeFace's false positives, e.g. on
    turned views, score about 0.03 there; real faces about 1). angles: frame orientations
    searched, in degrees (multiples of 90; e.g. (0, 90, 180, 270) for lying or upside-down
    faces, at one detector run each). Roll within about +-60 degrees needs no extra angle: the
    mesh ROI is turned to level the eyes.
    refine: run the mesh a second time on the ROI its first pass implies (MediaPipe's tracking
    ROI), True always (default), "auto" only where that ROI moved by more than `roi_moved`'s
    thresholds, False never. The mesh's points depend on its ROI by about 0.03 NME between a
    detection ROI and a landmark ROI; refining puts detected, boxed and tracked faces on the
    same landmark ROI, so a video's points do not jump when the detector runs.
    runtime: "onnx" (CPU default) or "torch" (the only one on CUDA).
    """

    def __init__(
        self,
        device: str = "cpu",
        detector: str = "full",
        min_score: float = 0.5,
        min_presence: float = 0.5,
        angles: Sequence[int] = (0,),
        refine: bool | str = True,
        runtime: str | None = None,
        precision: str = "fp16",
        threads: int | None = None,
    ) -> None:
        if detector not in DETECTORS:
            raise UserError(
                f"unknown MediaPipe detector {detector!r}; choose one of {', '.join(DETECTORS)}"
            )
        bad = [a for a in angles if a % 90]
        if bad:
            raise UserError(f"detection angles must be multiples of 90 degrees, got {bad}")
        runtime = runtime or ("torch" if device.startswith("cuda") else "onnx")
        if runtime == "onnx" and device != "cpu":
            raise UserError(
                "the ONNX face-analysis runtime runs on the CPU; use runtime torch for CUDA"
            )
        self.rt = (
            TorchRuntime(detector, device, precision)
            if runtime == "torch"
            else OnnxRuntime(detector, threads)
        )
        self.det_size = 128 if detector == "short" else 192
        self.min_score = min_score
        self.min_presence = min_presence
        self.angles = tuple(dict.fromkeys(int(a) % 360 for a in angles)) or (0,)
        self.refine = refine

    # -- detection

    def _detect_views(
        self, n_frames: int, uploaded, views: list[tuple[int, int, np.ndarray]]
    ) -> list[list[Detection]]:
        """Run the detector on (frame index, quarter turns, affine) views.

        Weighted NMS merges a frame's candidates within each orientation; across orientations
        the best-scoring detection of a face wins whole. BlazeFace also fires, weakly (0.5-0.7
        against 0.85-0.95 upright), on faces turned 90 or 180 degrees, with its keypoints
        placed as if upright; averaging those into the right orientation's would corrupt them.
        """
        cands: dict[tuple[int, int], list] = {}
        if views:
            x = self.rt.warp(
                uploaded, [a for _, _, a in views], [i for i, _, _ in views], self.det_size
            )
            for (i, turns, a), (b, sc) in zip(views, self.rt.detect_candidates(x, self.min_score)):
                if not len(sc):
                    continue
                pts = _apply(b.reshape(-1, 2) * self.det_size - 0.5, _invert(a)).reshape(-1, 8, 2)
                x0y0, x1y1 = pts[:, 0], pts[:, 1]
                corners = np.stack(
                    [
                        x0y0,
                        x1y1,
                        np.stack([x0y0[:, 0], x1y1[:, 1]], -1),
                        np.stack([x1y1[:, 0], x0y0[:, 1]], -1),
                    ],
                    1,
                )
                box = np.concatenate([corners.min(1), corners.max(1)], -1)
                cands.setdefault((i, turns), []).append((box, pts[:, 2:], sc))
        out: list[list[Detection]] = [[] for _ in range(n_frames)]
        for (i, _), parts in cands.items():
            box, kps, sc = (np.concatenate(c) for c in zip(*parts))
            out[i] += weighted_nms(box, kps, sc)
        for i, dets in enumerate(out):
            kept: list[Detection] = []
            for d in sorted(dets, key=lambda d: -d.score):
                if not kept or _box_iou(d.box, np.stack([k.box for k in kept])).max() <= NMS_IOU:
                    kept.append(d)
            out[i] = kept
        return out

    def detect_batch(
        self, frames: Sequence[np.ndarray], upsample: int = 0
    ) -> list[list[Detection]]:
        """BlazeFace detections per frame, best first.

        upsample n > 0 also runs the detector on (n+1) x (n+1) overlapping tiles of each frame
        (what dlib's upsampling buys: smaller faces, at (n+1)^2 more detector runs). Each extra
        angle in `angles` runs the whole frame once more, turned by that much.
        """
        return self._detections(frames, self.rt.upload(frames), upsample)

    def _detections(self, frames, uploaded, upsample: int) -> list[list[Detection]]:
        views = []
        for i, f in enumerate(frames):
            h, w = f.shape[:2]
            views += [
                (i, a // 90, letterbox_affine(h, w, self.det_size, a // 90)) for a in self.angles
            ]
            if upsample > 0:
                views += [
                    (i, 0, letterbox_affine(h, w, self.det_size, 0, win))
                    for win in tile_windows(h, w, upsample + 1)
                ]
        return self._detect_views(len(frames), uploaded, views)

    # -- mesh

    def _mesh(
        self, uploaded, rois: Sequence[Roi], index: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(K, 468, 3) points in frame pixels and (K,) presence for ROIs of uploaded frames."""
        if not rois:
            return np.zeros((0, 468, 3), np.float32), np.zeros(0, np.float32)
        affines = [roi_affine(r) for r in rois]
        points, presence = self.rt.run_mesh(self.rt.warp(uploaded, affines, index, MESH_SIZE))
        out = np.empty_like(points)
        for k, (a, r) in enumerate(zip(affines, rois)):
            out[k, :, :2] = _apply(points[k, :, :2] - 0.5, _invert(a))
            out[k, :, 2] = points[k, :, 2] * r.size / MESH_SIZE
        return out.astype(np.float32), presence.astype(np.float32)

    def mesh_batch(
        self, frames: Sequence[np.ndarray], rois: Sequence[Roi], index: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The mesh inside each ROI (index: which frame it belongs to), refined once if asked."""
        uploaded = self.rt.upload(frames)
        return self._mesh_refined(uploaded, list(rois), list(index))

    def _mesh_refined(
        self, uploaded, rois: list[Roi], index: list[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mesh, then a second pass where the ROI the first mesh implies differs from the one
        used (refine="auto"), on every face (True) or never (False)."""
        points, presence = self._mesh(uploaded, rois, index)
        if not self.refine or not len(rois):
            return points, presence
        implied = [roi_from_mesh(p) for p in points]
        redo = [
            k
            for k, (a, b) in enumerate(zip(rois, implied))
            if self.refine is True or roi_moved(a, b)
        ]
        if redo:
            again, again_presence = self._mesh(
                uploaded, [implied[k] for k in redo], [index[k] for k in redo]
            )
            points[redo], presence[redo] = again, again_presence
        return points, presence

    # -- faces

    def faces_batch(self, frames: Sequence[np.ndarray], upsample: int = 0) -> list[list[Face]]:
        """Every face of every frame: detection, mesh, 68 points, 5 keypoints; best first."""
        return self.faces_uploaded(frames, self.rt.upload(frames), upsample)

    def faces_uploaded(
        self, frames: Sequence[np.ndarray], uploaded, upsample: int = 0
    ) -> list[list[Face]]:
        """`faces_batch` of frames already on the device (`rt.upload`): the GPU frame path
        uploads each batch once and detects, aligns and pastes on that one copy."""
        dets = self._detections(frames, uploaded, upsample)
        rois = [roi_from_detection(d) for ds in dets for d in ds]
        index = [i for i, ds in enumerate(dets) for _ in ds]
        points, presence = self._mesh_refined(uploaded, rois, index)
        out: list[list[Face]] = [[] for _ in frames]
        for k, (i, det) in enumerate(zip(index, (d for ds in dets for d in ds))):
            if presence[k] >= self.min_presence:
                out[i].append(face_from_mesh(points[k], det.score))
        return out

    def faces_in_boxes(
        self, frames: Sequence[np.ndarray], boxes: Sequence[Sequence[np.ndarray]], scores=None
    ) -> list[list[Face]]:
        """Faces from given boxes (a tracker's, or another detector's): mesh only, no detection."""
        uploaded = self.rt.upload(frames)
        rois = [roi_from_box(b) for bs in boxes for b in bs]
        index = [i for i, bs in enumerate(boxes) for _ in bs]
        points, presence = self._mesh_refined(uploaded, rois, index)
        flat_scores = [s for ss in scores for s in ss] if scores is not None else list(presence)
        out: list[list[Face]] = [[] for _ in frames]
        for k, i in enumerate(index):
            out[i].append(face_from_mesh(points[k], float(flat_scores[k])))
        return out

    def track_batch(
        self, frames: Sequence[np.ndarray], faces: Sequence[Sequence[Face]]
    ) -> list[list[Face]]:
        """Follow faces into the next frames from their meshes (MediaPipe's tracking ROI): one
        mesh pass per face, no detector. Faces without a mesh fall back to their boxes."""
        uploaded = self.rt.upload(frames)
        rois = [
            roi_from_mesh(f.mesh) if f.mesh is not None else roi_from_box(f.bbox)
            for fs in faces
            for f in fs
        ]
        index = [i for i, fs in enumerate(faces) for _ in fs]
        points, _ = self._mesh(uploaded, rois, index)
        out: list[list[Face]] = [[] for _ in frames]
        for k, (i, f) in enumerate(zip(index, (f for fs in faces for f in fs))):
            out[i].append(replace(face_from_mesh(points[k], f.score), embedding=f.embedding))
        return out


def face_from_mesh(points: np.ndarray, score: float) -> Face:
    """A Face record from 468 mesh points: the 68-point layout, its 5 keypoints and a box of
    the kind dlib's HOG detector draws (so boxes from both backends and from tracking agree)."""
    lm = mesh_to_68(points)
    return Face(
        bbox=box_from_landmarks(lm),
        landmarks=lm,
        kps=kps_from_landmarks(lm),
        score=float(score),
        mesh=points,
    )
