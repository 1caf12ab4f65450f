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
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from slimswap.errors import UserError
from slimswap.face.analyser import Face, box_from_landmarks, kps_from_landmarks
from slimswap.face.mesh_map import mesh_to_68
from slimswap.paths import models_dir

DETECTORS = {"full": "blazeface_full", "short": "blazeface_short"}
MESH_SIZE = 192
ROI_SCALE = 1.5  # MediaPipe's face ROI: the detection box (or landmark extent) x1.5, square
NMS_IOU = 0.3  # MediaPipe's min_suppression_threshold (weighted NMS)
RIGHT_EYE_CORNER, LEFT_EYE_CORNER = 33, 263  # mesh points MediaPipe uses for the ROI angle


@dataclass(frozen=True)
class Detection:
    """One BlazeFace detection in frame pixels (pixel-centre coordinates).

    keypoints (6, 2): subject's right eye, left eye, nose tip, mouth centre, right ear, left ear.
    """

    box: np.ndarray
    keypoints: np.ndarray
    score: float


@dataclass(frozen=True)
class Roi:
    """A square, rotated face region: centre and side in frame pixels, angle of the eye line."""

    cx: float
    cy: float
    size: float
    angle: float  # radians, image coordinates (y down): atan2 of the right-eye -> left-eye vector


# ----------------------------------------------------------------------------- geometry


def _to3(a: np.ndarray) -> np.ndarray:
    return np.vstack([a, [0.0, 0.0, 1.0]])


def roi_affine(roi: Roi, size: int = MESH_SIZE) -> np.ndarray:
    """2x3 affine from frame pixels to the size x size crop in which the face is upright."""
    k = size / roi.size
    c, s = math.cos(-roi.angle), math.sin(-roi.angle)
    rot = k * np.array([[c, -s], [s, c]])
    centre = (size - 1) / 2.0
    t = np.array([centre, centre]) - rot @ np.array([roi.cx, roi.cy])
    return np.hstack([rot, t[:, None]])


def letterbox_affine(
    h: int, w: int, size: int, quarter_turns: int = 0, window: tuple[float, ...] | None = None
) -> np.ndarray:
    """2x3 affine from frame pixels to a size x size detector input.

    The frame (or `window` = (x0, y0, side), a square part of it) is turned by
    `quarter_turns` x 90 degrees about its centre and fitted, aspect kept, into the square.
    """
    if window is None:
        cx, cy, side = (w - 1) / 2.0, (h - 1) / 2.0, float(max(h, w))
    else:
        x0, y0, side = window
        cx, cy = x0 + (side - 1) / 2.0, y0 + (side - 1) / 2.0
    k = size / side
    ang = -quarter_turns * math.pi / 2  # turning the image by +90 degrees clockwise
    c, s = round(math.cos(ang)), round(math.sin(ang))
    rot = k * np.array([[c, -s], [s, c]], np.float64)
    centre = (size - 1) / 2.0
    t = np.array([centre, centre]) - rot @ np.array([cx, cy])
    return np.hstack([rot, t[:, None]])


def tile_windows(h: int, w: int, n: int) -> list[tuple[float, float, float]]:
    """n x n overlapping square windows (x0, y0, side) covering the frame; side = 2/(n+1) of
    the longer side, so neighbours overlap by half a window and a face cut by one border is
    whole in the next."""
    side = 2.0 * max(h, w) / (n + 1)
    xs = np.linspace(0, max(w - side, 0), n) if w > side else [(w - side) / 2] * n
    ys = np.linspace(0, max(h - side, 0), n) if h > side else [(h - side) / 2] * n
    return [(float(x), float(y), side) for y in ys for x in xs]


def _apply(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    return points @ affine[:, :2].T + affine[:, 2]


def _invert(affine: np.ndarray) -> np.ndarray:
    return np.linalg.inv(_to3(affine))[:2]


def _box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda b: (
        np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    )
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU
) -> list[Detection]:
    """MediaPipe's WEIGHTED non-maximum suppression, written by hand (a dozen lines).

    Each surviving detection is the score-weighted mean of every candidate overlapping the
    best remaining one by more than `iou`; its score stays the best one's. Averaging
    BlazeFace's many overlapping anchors steadies boxes from frame to frame.
    """
    order = np.argsort(-scores, kind="stable")
    out = []
    while len(order):
        overlap = _box_iou(boxes[order[0]], boxes[order])
        group, order = order[overlap > iou], order[overlap <= iou]
        w = scores[group][:, None]
        box = (boxes[group] * w).sum(0) / w.sum()
        kps = (keypoints[group] * w[:, :, None]).sum(0) / w.sum()
        out.append(
            Detection(box.astype(np.float32), kps.astype(np.float32), float(scores[group[0]]))
        )
    return out


def roi_from_detection(det: Detection) -> Roi:
    """MediaPipe's face_detection_front_detection_to_roi: box centre, longer side x1.5, eyes level."""
    x0, y0, x1, y1 = det.box
    right_eye, left_eye = det.keypoints[0], det.keypoints[1]
    angle = math.atan2(left_eye[1] - right_eye[1], left_eye[0] - right_eye[0])
    return Roi((x0 + x1) / 2, (y0 + y1) / 2, ROI_SCALE * max(x1 - x0, y1 - y0), angle)


def roi_from_box(box: np.ndarray) -> Roi:
    """An upright ROI from a bare box (a tracker's or another detector's)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return Roi((x0 + x1) / 2, (y0 + y1) / 2, ROI_SCALE * max(x1 - x0, y1 - y0), 0.0)


def roi_from_mesh(points: np.ndarray) -> Roi:
    """MediaPipe's face_landmarks_to_roi: the mesh's extent in its own upright frame, x1.5."""
    xy = np.asarray(points, np.float64)[:, :2]
    d = xy[LEFT_EYE_CORNER] - xy[RIGHT_EYE_CORNER]
    angle = math.atan2(d[1], d[0])
    c, s = math.cos(angle), math.sin(angle)
    upright = xy @ np.array([[c, -s], [s, c]])  # rotate by -angle
    lo, hi = upright.min(0), upright.max(0)
    centre = np.array([[c, -s], [s, c]]) @ ((lo + hi) / 2)  # rotate back by +angle
    return Roi(float(centre[0]), float(centre[1]), ROI_SCALE * float(max(hi - lo)), angle)


def roi_moved(
    used: Roi,
    implied: Roi,
    angle: float = math.radians(8),
    shift: float = 0.06,
    scale: float = 0.12,
) -> bool:
    """Whether a mesh pass says its ROI was off enough to be worth a second pass: rotated by
    more than `angle`, centre off by more than `shift` of the side, or side off by `scale`."""
    d_angle = abs((implied.angle - used.angle + math.pi) % (2 * math.pi) - math.pi)
    d_centre = math.hypot(implied.cx - used.cx, implied.cy - used.cy) / used.size
    return d_angle > angle or d_centre > shift or abs(implied.size / used.size - 1) > scale


# ----------------------------------------------------------------------------- model files


def analysis_model_path(kind: str, backend: str) -> Path:
    """The hash-checked file of an analysis model listed in models/MANIFEST.

    The MANIFEST is read here, not through the swap registry: its analysis entries (mode
    "analysis", keyed by "kind" and "backend") are none of the registry's business. Raises
    UserError (one line, exit 2 in the CLI) when the manifest, the entry or the file is
    missing, or the file's sha256 differs from the manifest's.
    """
    from slimswap.files import sha256_file

    folder = models_dir()
    manifest = folder / "MANIFEST"
    restore = f"restore it with `git checkout -- {folder}` or use --detector dlib"
    try:
        entries = json.loads(manifest.read_text()).get("models", [])
    except FileNotFoundError:
        raise UserError(f"{manifest} is missing; {restore}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{manifest} is not valid JSON ({exc}); {restore}") from None
    found = [
        e
        for e in entries
        if e.get("mode") == "analysis" and e.get("kind") == kind and e.get("backend") == backend
    ]
    if not found:
        raise UserError(
            f"no {kind} ({backend}) face-analysis model is listed in {manifest}; {restore}"
        )
    path = folder / found[0]["file"]
    if not path.is_file():
        raise UserError(f"face-analysis model file missing: {path}; {restore}")
    if sha256_file(path) != found[0]["sha256"]:
        raise UserError(
            f"face-analysis model file {path} is corrupted (sha256 mismatch); {restore}"
        )
    return path


def load_torch_net(kind: str, device: str = "cpu", dtype=None):
    """A ported MediaPipe net with its hash-checked safetensors weights, in eval mode."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from slimswap.nets.mediapipe import NETS

    path = analysis_model_path(kind, "torch")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise UserError(f"cannot read face-analysis model {path}: {exc}") from None
    net = NETS[kind]()
    net.load_state_dict({k: v.float() for k, v in state.items()})
    return net.to(device=device, dtype=dtype or torch.float32).eval()


# ----------------------------------------------------------------------------- runtimes


def _shrink_factor(affine: np.ndarray) -> int:
    """Integer pre-shrink so the warp itself never minifies by more than 2 (no aliasing)."""
    scale = math.sqrt(abs(np.linalg.det(affine[:, :2])))
    return max(1, int(1.0 / scale)) if scale < 0.5 else 1


class OnnxRuntime:
    """CPU: ONNX Runtime sessions, cv2 resampling."""

    def __init__(self, detector: str, threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        # no busy-waiting between ops: on a loaded 2-core machine spinning threads made the
        # mesh 3x slower (these nets run a few ms; a spinning pool steals the other stages' core)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sessions = {
            k: ort.InferenceSession(
                str(analysis_model_path(k, "onnx")), opts, providers=["CPUExecutionProvider"]
            )
            for k in (DETECTORS[detector], "face_mesh")
        }
        self.detector = DETECTORS[detector]

    def upload(self, frames: Sequence[np.ndarray]) -> list[dict]:
        return [{"frame": np.ascontiguousarray(f)} for f in frames]

    def warp(
        self, frames: list[dict], affines: Sequence[np.ndarray], index: Sequence[int], size: int
    ) -> np.ndarray:
        out = np.empty((len(affines), 3, size, size), np.float32)
        for j, (a, i) in enumerate(zip(affines, index)):
            k = _shrink_factor(a)
            src = frames[i]
            if k > 1:
                if k not in src:
                    f = src["frame"]
                    src[k] = cv2.resize(
                        f,
                        (max(1, f.shape[1] // k), max(1, f.shape[0] // k)),
                        interpolation=cv2.INTER_AREA,
                    )
                small = src[k]
                sx = small.shape[1] / src["frame"].shape[1]
                sy = small.shape[0] / src["frame"].shape[0]
                to_small = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5]])
                a = a @ np.linalg.inv(_to3(to_small))
                img = small
            else:
                img = src["frame"]
            crop = cv2.warpAffine(
                img, a[:2], (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
            )
            out[j] = crop.transpose(2, 0, 1) * np.float32(1 / 255)
        return out

    def _run(self, kind: str, x: np.ndarray, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
        sess = self.sessions[kind]
        parts = [sess.run(None, {"image": x[i : i + chunk]}) for i in range(0, len(x), chunk)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def detect_candidates(
        self, x: np.ndarray, min_score: float
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per view: (boxes (n, 16), scores (n,)) of the anchors at or above min_score."""
        boxes, scores = self._run(self.detector, x)
        return [(b[s >= min_score], s[s >= min_score]) for b, s in zip(boxes, scores)]

    def run_mesh(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._run("face_mesh", x)


class TorchRuntime:
    """PyTorch (CUDA, or CPU for testing): frames go to the device once as uint8 (one copy per
    batch of same-sized frames), every warp of a batch is one batched grid_sample, and only
    detector candidates above the threshold come back to the host."""

    def __init__(self, detector: str, device: str = "cuda", precision: str = "fp16") -> None:
        import torch

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(
                "--device cuda was asked for but no CUDA GPU is available; use --device cpu"
            )
        self.torch = torch
        self.device = torch.device(device)
        fp16 = precision == "fp16" and self.device.type == "cuda"
        self.dtype = torch.float16 if fp16 else torch.float32
        self.detector = DETECTORS[detector]
        self.nets = {
            k: load_torch_net(k, str(self.device), self.dtype) for k in (self.detector, "face_mesh")
        }
        if self.device.type == "cuda":
            self.nets = {k: n.to(memory_format=torch.channels_last) for k, n in self.nets.items()}

    def upload(self, frames: Sequence[np.ndarray]) -> dict:
        """{"groups": [(N,3,H,W) tensors in [0, 1]], "where": [(group, row) per frame], "pooled": {}}.

        Frames may also be uint8 (H, W, 3) tensors already on the device (a GPU decoder's)."""
        torch = self.torch
        shapes: dict[tuple, list[int]] = {}
        for i, f in enumerate(frames):
            shapes.setdefault(tuple(f.shape), []).append(i)
        groups, where = [], [None] * len(frames)
        for g, idx in enumerate(shapes.values()):
            if isinstance(frames[idx[0]], torch.Tensor):
                batch = torch.stack([frames[i] for i in idx]).to(self.device, non_blocking=True)
            else:
                host = torch.from_numpy(np.ascontiguousarray(np.stack([frames[i] for i in idx])))
                if self.device.type == "cuda":
                    host = host.pin_memory()
                batch = host.to(self.device, non_blocking=True)
            groups.append(batch.permute(0, 3, 1, 2).to(self.dtype).mul_(1 / 255))
            for row, i in enumerate(idx):
                where[i] = (g, row)
        return {"groups": groups, "where": where, "pooled": {}}

    def _source(self, uploaded: dict, g: int, k: int):
        """Frame group g shrunk k times by a box filter (cached): p' = (p + 0.5) / k - 0.5."""
        if k == 1:
            return uploaded["groups"][g]
        if (g, k) not in uploaded["pooled"]:
            uploaded["pooled"][g, k] = self.torch.nn.functional.avg_pool2d(
                uploaded["groups"][g], k, k
            )
        return uploaded["pooled"][g, k]

    def warp(self, uploaded: dict, affines: Sequence[np.ndarray], index: Sequence[int], size: int):
        """Bilinear warps (zeros outside) of frames through their affines, one grid_sample per
        (frame size, shrink factor) group."""
        torch = self.torch
        F = torch.nn.functional
        out = torch.empty(len(affines), 3, size, size, device=self.device, dtype=self.dtype)
        jobs: dict[tuple[int, int], list[tuple[int, int, np.ndarray]]] = {}
        for j, (a, i) in enumerate(zip(affines, index)):
            g, row = uploaded["where"][i]
            k = _shrink_factor(a)
            if k > 1:
                to_small = np.array([[1 / k, 0, 0.5 / k - 0.5], [0, 1 / k, 0.5 / k - 0.5]])
                a = a @ np.linalg.inv(_to3(to_small))
            jobs.setdefault((g, k), []).append((j, row, a))
        out_to_px = np.array(
            [[size / 2, 0, (size - 1) / 2], [0, size / 2, (size - 1) / 2], [0, 0, 1]]
        )
        for (g, k), items in jobs.items():
            src = self._source(uploaded, g, k)
            h, w = src.shape[2:]
            px_to_in = np.array([[2 / w, 0, 1 / w - 1], [0, 2 / h, 1 / h - 1], [0, 0, 1]])
            # theta maps output normalised coords to input normalised coords (align_corners=False)
            theta = np.stack(
                [(px_to_in @ np.linalg.inv(_to3(a)) @ out_to_px)[:2] for _, _, a in items]
            )
            theta_t = torch.from_numpy(theta).to(self.device, self.dtype)
            grid = F.affine_grid(theta_t, [len(items), 3, size, size], align_corners=False)
            rows = torch.tensor([r for _, r, _ in items], device=self.device)
            crops = F.grid_sample(
                src.index_select(0, rows),
                grid,
                mode="bilinear",
                padding_mode="zeros",
                align_corners=False,
            )
            out[torch.tensor([j for j, _, _ in items], device=self.device)] = crops
        return (
            out.contiguous(memory_format=torch.channels_last) if self.device.type == "cuda" else out
        )

    def detect_candidates(self, x, min_score: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per view: (boxes (n, 16), scores (n,)) of the anchors at or above min_score."""
        with self.torch.inference_mode():
            boxes, scores = self.nets[self.detector](x)
            keep = scores >= min_score
            view, anchor = keep.nonzero(as_tuple=True)
            kept_boxes = boxes[view, anchor].float().cpu().numpy()
            kept_scores = scores[view, anchor].float().cpu().numpy()
            view = view.cpu().numpy()
        return [(kept_boxes[view == v], kept_scores[view == v]) for v in range(len(x))]

    def run_mesh(self, x) -> tuple[np.ndarray, np.ndarray]:
        with self.torch.inference_mode():
            points, presence = self.nets["face_mesh"](x)
        return points.float().cpu().numpy(), presence.float().cpu().numpy()


# ----------------------------------------------------------------------------- analysis


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
