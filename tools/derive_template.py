"""Measure the 5-point alignment template inside dlib's 150px face chip (padding 0.25).

Run once; its output is TEMPLATE_5 in slimswap/face/align.py. Needs ../shared/data.
    python tools/derive_template.py
"""

import glob
import math

import cv2
import dlib
import numpy as np

from slimswap.face.analyser import FaceAnalyser, _rect, kps_from_landmarks
from slimswap.paths import shared_data_dir


def chip_coordinates(landmarks: np.ndarray, shape) -> np.ndarray:
    """Landmarks in dlib chip pixel-index coordinates (0..149)."""
    details = dlib.get_face_chip_details(shape, 150, 0.25)
    r, a = details.rect, details.angle
    centre = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2])
    step = (r.right() - r.left()) / 149
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return ((landmarks - centre) @ rot) / step + 74.5


def main() -> None:
    data = shared_data_dir()
    assert data is not None, "needs ../shared/data"
    analyser = FaceAnalyser()
    points = []
    for path in sorted(glob.glob(str(data / "lfw_deepfunneled/*/*.jpg")))[::40][:200]:
        img = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        faces = analyser.detect(img)
        if not faces:
            continue
        f = faces[0]
        shape = dlib.full_object_detection(
            _rect(f.bbox), [dlib.point(int(round(x)), int(round(y))) for x, y in f.landmarks]
        )
        points.append(chip_coordinates(f.landmarks, shape))
    mean68 = (np.mean(points, 0) + 0.5) / 150  # pixel-edge units
    print(len(points), "faces")
    print(np.round(kps_from_landmarks(mean68), 5).tolist())


if __name__ == "__main__":
    main()
