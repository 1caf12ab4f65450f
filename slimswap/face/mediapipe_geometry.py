"""The geometry of MediaPipe face analysis: detections and face ROIs, the affine warps to the
square model inputs and back (letterbox, tiles, the rotated ROI), weighted NMS. numpy only."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

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
