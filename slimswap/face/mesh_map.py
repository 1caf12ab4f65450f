"""Index tables over MediaPipe's 468-point face mesh: the 68-point layout and face regions.

"Right" and "left" are the subject's own (MediaPipe's convention): the subject's right eye is
on the image's left. Region outlines follow the contour lists MediaPipe publishes for
drawing (FACEMESH_LIPS, _LEFT_EYE, _RIGHT_EYE, _LEFT_EYEBROW, _RIGHT_EYEBROW, _FACE_OVAL), as
closed polygons in drawing order; the nose outline was picked by hand on a rendered mesh.
"""

from __future__ import annotations

import numpy as np

FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip
LIPS_OUTER = (
    61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146,
)  # fmt: skip
LIPS_INNER = (
    78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95,
)  # fmt: skip
RIGHT_EYE = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
LEFT_EYE = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
RIGHT_BROW = (46, 53, 52, 65, 55, 107, 66, 105, 63, 70)
LEFT_BROW = (276, 283, 282, 295, 285, 336, 296, 334, 293, 300)
NOSE = (168, 351, 343, 358, 327, 326, 2, 97, 98, 129, 114, 122)

# The 68-point layout (iBUG 300-W order, as dlib's predictor returns it) from mesh points:
# point j = (1 - t) * mesh[a] + t * mesh[b] for MESH_TO_68[j] = (a, b, t). Fitted by
# tools/fit_mesh68.py to dlib's points on 483 LFW + CelebA faces, with eye, brow and lip
# points restricted to their own contour (and lid/lip half); NME against dlib on the
# held-out deepface test set: 0.031 (jaw 0.045, eyes 0.021, lips 0.027-0.030). The jaw was
# refitted (issue 20) on those faces plus 352 frames of the training clips with t free in
# -1..2 (the other points blend within 0..1): dlib follows the visible silhouette, outside the
# mesh's skin vertices (its chin ~3 % of the face height below the mesh's lowest point), and
# the swap model, trained on dlib's points, half closed open mouths under a chin placed too
# high. Jaw NME 0.058 -> 0.045 on deepface, 0.059 -> 0.051 on the held-out clips' frames
# (their chin 0.056 -> 0.033).
MESH_TO_68: tuple[tuple[int, int, float], ...] = (
    # jaw (0-16)
    (162, 234, 0.50), (147, 234, 0.80), (93, 215, 0.35), (58, 147, 0.20), (138, 172, 0.80),
    (169, 204, -0.50), (140, 208, -0.80), (148, 199, -0.35), (175, 200, -0.70), (199, 377, 1.45),
    (369, 428, -0.95), (394, 424, -0.65), (367, 416, -0.70), (411, 435, 1.15), (361, 366, 0.35),
    (366, 454, 0.60), (353, 356, 1.10),
    # right brow (17-21)
    (46, 70, 0.35), (66, 70, 0.65), (66, 70, 0.25), (46, 107, 0.80), (55, 107, 0.15),
    # left brow (22-26)
    (285, 336, 0.25), (283, 336, 0.70), (293, 296, 0.60), (300, 334, 0.50), (276, 300, 0.70),
    # nose bridge (27-30)
    (168, 351, 0.30), (197, 412, 0.10), (3, 281, 0.55), (4, 354, 0.20),
    # nose base (31-35)
    (97, 240, 0.65), (2, 97, 0.85), (164, 370, 0.30), (326, 393, 0.10), (327, 328, 0.35),
    # right eye (36-41)
    (7, 144, 0.20), (133, 160, 0.80), (133, 158, 0.75), (133, 155, 0.50), (153, 154, 0.05),
    (144, 145, 0.40),
    # left eye (42-47)
    (380, 382, 0.85), (384, 388, 0.25), (385, 388, 0.60), (249, 263, 0.10), (373, 374, 0.05),
    (374, 380, 0.65),
    # outer lips (48-59)
    (61, 146, 0.30), (0, 185, 0.65), (0, 40, 0.30), (37, 291, 0.25), (0, 270, 0.40),
    (0, 409, 0.70), (291, 375, 0.15), (321, 405, 0.55), (314, 405, 0.00), (17, 314, 0.05),
    (17, 84, 0.85), (91, 181, 0.75),
    # inner lips (60-67)
    (78, 95, 0.40), (81, 82, 0.95), (13, 312, 0.10), (308, 312, 0.90), (308, 324, 0.15),
    (317, 402, 0.25), (14, 317, 0.10), (87, 178, 0.00),
)  # fmt: skip


def mesh_to_68(points: np.ndarray) -> np.ndarray:
    """(468, 2|3) mesh -> (68, 2) float32 in the 68-point layout: each point is a fixed blend
    (1 - t) * mesh[a] + t * mesh[b] of two mesh vertices (see MESH_TO_68)."""
    xy = np.asarray(points, np.float32)[:, :2]
    a, b, t = (np.array(c) for c in zip(*MESH_TO_68))
    return ((1 - t[:, None]) * xy[a] + t[:, None] * xy[b]).astype(np.float32)
