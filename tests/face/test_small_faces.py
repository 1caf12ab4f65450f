"""Still images are searched for small faces: the default finds ~24 px faces in a 1280 px photo
(issue 21: a child's face low in a group photo was missed)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from slimswap import media
from slimswap.face.analyser import FaceAnalyser, small_face_upsample


@pytest.mark.shared
def test_default_image_detection_finds_24_px_faces_in_a_large_photo(shared_data):
    group = media.read_image(shared_data / "insightface_wheel_samples" / "t1.jpg")  # 6 faces
    small = cv2.resize(group, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    photo = np.full((886, 1280, 3), 128, np.uint8)
    y, x = photo.shape[0] - small.shape[0] - 10, photo.shape[1] - small.shape[1] - 10
    photo[y : y + small.shape[0], x : x + small.shape[1]] = small  # faces 22-28 px, low right
    analyser = FaceAnalyser()
    assert analyser.detect(photo) == []  # one look at the whole photo: 4 px faces for BlazeFace
    widths = sorted(float(np.ptp(f.landmarks[:, 0])) for f in analyser.detect_image(photo))
    assert len(widths) >= 5 and widths[0] < 26, widths
    assert small_face_upsample(886, 1280) == 4 and small_face_upsample(300, 300) == 0
