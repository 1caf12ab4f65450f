"""The Live tab in a real browser: Chromium's fake camera plays a talking-head clip from
../shared/data, the page streams it to `slimswap ui`, and swapped frames must come back.

A streamed frame is checked the way a person would: it is one of the camera's frames (the
hair and background match the nearest camera frame), but its face region is not, the face
in it moved towards the source identity (dlib distance), and it carries the invisible
watermark. The fps the page shows is recorded with a screenshot in tests/ui/artifacts/.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import re

import av
import cv2
import numpy as np
import pytest

from slimswap import media
from slimswap.face.analyser import embedding_distance
from slimswap.paths import EXAMPLES_DIR
from slimswap.provenance import read_watermark

SOURCE = EXAMPLES_DIR / "grace_hopper.jpg"
CLIP = "videos/liveportrait_driving_d3.mp4"  # not the clip bundled in examples/
SIDE = 384  # camera frames: small enough to swap quickly, face ~190 px
FRAMES = 60  # two seconds at 30 fps; Chromium loops the file
STREAM_MS = 5000

pytestmark = [pytest.mark.slow, pytest.mark.shared]


def camera_frames(shared_data) -> list[np.ndarray]:
    with av.open(str(shared_data / CLIP)) as container:
        decoded = itertools.islice(container.decode(video=0), FRAMES)
        return [
            cv2.resize(f.to_ndarray(format="rgb24"), (SIDE, SIDE), interpolation=cv2.INTER_AREA)
            for f in decoded
        ]


def write_y4m(path, frames: list[np.ndarray]) -> list[np.ndarray]:
    """A y4m file for Chromium's fake camera; returns the frames as they read back (I420)."""
    back = []
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{SIDE} H{SIDE} F30:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
            out.write(b"FRAME\n" + i420.tobytes())
            back.append(cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420))
    return back


def face_mask(shape, box, grow: float = 0.0) -> np.ndarray:
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * grow, (y1 - y0) * grow
    mask = np.zeros(shape[:2], bool)
    mask[max(0, int(y0 - dy)) : int(y1 + dy), max(0, int(x0 - dx)) : int(x1 + dx)] = True
    return mask


def mean_abs_diff(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32))[where].mean())


def embedding_of(rgb: np.ndarray, analyser) -> np.ndarray:
    (face,) = analyser.detect(rgb)
    return analyser.embed(rgb, face).embedding


def test_live_tab_streams_swapped_frames_from_the_webcam(
    server, launch_chromium, analyser, artifacts, shared_data, tmp_path
):
    y4m = tmp_path / "camera.y4m"
    camera = write_y4m(y4m, camera_frames(shared_data))
    browser = launch_chromium(
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}",
    )
    try:
        context = browser.new_context(
            viewport={"width": 1300, "height": 900}, permissions=["camera"]
        )
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(server)
        page.get_by_role("tab", name="Live").click()
        page.locator("#live-source input[type=file]").set_input_files(str(SOURCE))
        page.locator("#live-camera button", has_text="Click to Access Webcam").click()
        page.locator("#live-camera button.capture-button", has_text="Record").click()
        page.wait_for_function(
            "() => /[0-9.]+ fps/.test(document.querySelector('#live-fps').innerText)"
        )
        page.wait_for_timeout(STREAM_MS)  # stream for a while, then look at what came back
        # the status line (Gradio may put its hidden run timer, "0.0s", in the same box)
        status = next(
            line for line in page.locator("#live-fps").inner_text().splitlines() if "fps" in line
        )
        src = page.locator("#live-output img").get_attribute("src")
        page.screenshot(path=str(artifacts / "ui_live.png"))
        assert src.startswith("data:image/jpeg;base64,")  # inline: no file per frame
        jpeg = np.frombuffer(base64.b64decode(src.partition(",")[2]), np.uint8)
        streamed = cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        page.locator("#live-camera button.capture-button").click()  # stop streaming
    finally:
        browser.close()

    fps = float(re.search(r"([0-9.]+) fps", status).group(1))
    server_ms = float(re.search(r"([0-9.]+) ms a frame", status).group(1))
    (artifacts / "ui_live_timing.json").write_text(
        json.dumps(
            {
                "what": f"Live tab, fake camera {SIDE}x{SIDE} from {CLIP}",
                "status": status,
                "fps_in_page": fps,
                "server_ms_per_frame": server_ms,
            },
            indent=1,
        )
    )
    print(f"\nLive tab: {status}")
    assert "face swapped" in status and math.isfinite(fps) and fps > 0, status
    assert streamed.shape == (SIDE, SIDE, 3)

    faces = analyser.detect(streamed)
    assert len(faces) == 1, "the streamed frame shows one face"
    box = faces[0].bbox
    # the frame it was made from: the camera frame whose hair and background match best
    outside = ~face_mask(streamed.shape, box, grow=0.15)
    nearest = min(camera, key=lambda f: mean_abs_diff(streamed, f, outside))
    inside = face_mask(streamed.shape, box, grow=-0.2)  # the inner face: eyes, nose, mouth
    outside_diff = mean_abs_diff(streamed, nearest, outside)
    inside_diff = mean_abs_diff(streamed, nearest, inside)
    assert outside_diff < 6, f"the streamed frame is not one of the camera's ({outside_diff:.1f})"
    assert inside_diff > 3 * outside_diff and inside_diff > 6, (inside_diff, outside_diff)

    source = embedding_of(media.read_image(SOURCE), analyser)
    before = embedding_distance(embedding_of(nearest, analyser), source)
    after = embedding_distance(embedding_of(streamed, analyser), source)
    print(
        f"face region differs by {inside_diff:.1f} grey levels (rest of the frame {outside_diff:.1f}); "
        f"dlib distance to the source {before:.3f} -> {after:.3f}"
    )
    assert after < before, f"identity did not move towards the source: {before:.3f} -> {after:.3f}"
    assert read_watermark(streamed).detected, "the streamed frame carries the watermark"
