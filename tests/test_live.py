"""Live mode: the capture/swap loop on a video file played as a live source (in real time),
its frame accounting and statistics, Ctrl-C on a file output, pass-through of frames
without a face, and a second face entering beside the swapped one.
"""

from __future__ import annotations

import functools
import json
import math
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from slimswap import media
from slimswap.errors import UserError
from slimswap.face.analyser import FaceAnalyser, embedding_distance
from slimswap.face.select import select_faces
from slimswap.live import (
    CapturedFrame,
    CaptureSource,
    FileSource,
    LatestFrame,
    LiveStats,
    frame_swapper,
    gui_available,
    is_recording_url,
    live_loop,
)
from slimswap.options import LiveSettings, SwapOptions
from slimswap.paths import EXAMPLES_DIR
from slimswap.provenance import embed_watermark, verify_file
from slimswap.swap.registry import load_swapper

SOURCE = EXAMPLES_DIR / "grace_hopper.jpg"
CLIP = EXAMPLES_DIR / "clip.mp4"  # 512x512, 30 fps, one face on every frame
CUT = 45  # frames of the clip the CLI tests play: 1.5 s in real time


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 30) -> Path:
    info = media.VideoInfo(
        width=frames[0].shape[1],
        height=frames[0].shape[0],
        fps=Fraction(fps),
        frame_count=len(frames),
        duration_s=len(frames) / fps,
    )
    with media.VideoWriter(path, info, None) as writer:
        writer.write(frames)
    return path


@pytest.fixture(scope="module")
def clip_frames() -> list[np.ndarray]:
    return next(media.read_frames(CLIP, CUT))


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory, clip_frames) -> Path:
    return write_clip(tmp_path_factory.mktemp("live") / "cut.mp4", clip_frames)


def decoded(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """Frames of a video and their presentation times in seconds."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return [f.to_ndarray(format="rgb24") for f in frames], [float(f.time) for f in frames]


def embedding_of(rgb: np.ndarray, analyser) -> np.ndarray:
    (face,) = analyser.detect(rgb)
    return analyser.embed(rgb, face).embedding


def run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "slimswap.cli", "live", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def check_stats(stats: dict, captured: int | None = None) -> None:
    """The accounting and the measured fields every stats file must have."""
    if captured is not None:
        assert stats["frames_captured"] == captured  # a file is read to its last frame
    assert stats["frames_processed"] + stats["frames_dropped"] == stats["frames_captured"]
    assert stats["frames_processed"] >= 3
    for key in ("fps", "capture_fps", "seconds"):
        assert math.isfinite(stats[key]) and stats[key] > 0, key
    lat = stats["latency_ms"]
    assert all(math.isfinite(lat[k]) and lat[k] > 0 for k in ("p50", "p95", "mean", "max"))
    assert lat["p50"] <= lat["p95"] <= lat["max"]
    assert {"detect", "landmarks", "swap", "paste", "watermark", "output"} <= set(
        stats["stages_ms"]
    )
    assert stats["stages_ms"]["detect"]["runs"] >= 1


# ------------------------------------------------------------------ the command


@pytest.mark.slow
def test_cli_live_file_output_matches_its_stats_and_keeps_real_time(
    short_clip, clip_frames, tmp_path, analyser
):
    out, stats_path = tmp_path / "live.mp4", tmp_path / "stats.json"
    result = run_cli(
        "-s", str(SOURCE), "--input", str(short_clip), "--output", "file", "--out", str(out),
        "--mode", "classic", "--stats", str(stats_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    stats = json.loads(stats_path.read_text())
    check_stats(stats, captured=CUT)
    assert stats["frames_without_face"] == 0 and stats["stopped_by"] == "end of input"

    frames, times = decoded(out)
    assert len(frames) == stats["frames_processed"]  # every swapped frame is in the file, once
    # each frame sits at the time it was captured: dropped frames leave gaps, not a faster
    # video; the last frame is always swapped, so the file lasts as long as the input
    assert times == sorted(set(times))
    assert times[-1] == pytest.approx((CUT - 1) / 30, abs=1e-3)

    # frame at time t was made from input frame t * fps: around the face it is that frame
    k = len(frames) // 2
    index = round(times[k] * 30)
    face = analyser.detect(clip_frames[index])[0]
    outside = np.ones(frames[k].shape[:2], bool)
    x0, y0, x1, y1 = face.bbox.astype(int)
    outside[max(0, y0 - 40) : y1 + 40, max(0, x0 - 40) : x1 + 40] = False
    diffs = [np.abs(frames[k].astype(int) - f)[outside].mean() for f in clip_frames]
    assert abs(int(np.argmin(diffs)) - index) <= 1
    source = embedding_of(media.read_image(SOURCE), analyser)
    assert embedding_distance(embedding_of(frames[k], analyser), source) < embedding_distance(
        embedding_of(clip_frames[index], analyser), source
    )

    report = verify_file(out)
    assert report.c2pa.valid and report.label_present and report.watermark_present


@pytest.mark.slow
def test_ctrl_c_finishes_a_valid_labelled_file(tmp_path):
    long_input = str(CLIP)  # 4 s: interrupted well before its end
    out, stats_path = tmp_path / "live.mp4", tmp_path / "stats.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "slimswap.cli", "live", "-s", str(SOURCE), "--input", long_input,
         "--output", "file", "--out", str(out), "--mode", "classic", "--stats", str(stats_path)],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        for line in proc.stderr:  # the loop has started when it says so
            if "Ctrl-C to stop" in line:
                break
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    assert proc.returncode == 0, rest
    stats = json.loads(stats_path.read_text())
    assert stats["stopped_by"] == "interrupted"
    assert stats["frames_captured"] < media.probe_video(CLIP).frame_count
    check_stats(stats)
    assert media.probe_video(out).frame_count == stats["frames_processed"]
    report = verify_file(out)
    assert report.c2pa.valid and report.label_present and report.watermark_present
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp left


@pytest.mark.skipif(gui_available(), reason="this OpenCV has GUI support: a window would open")
def test_window_output_without_gui_support_is_one_line_exit_2():
    result = run_cli("-s", str(SOURCE), "--input", str(CLIP))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "opencv-python-headless" in result.stderr


@pytest.mark.skipif(
    any(Path("/dev").glob("video*")), reason="this machine has video devices: nothing to refuse"
)
def test_v4l2_and_camera_without_devices_are_one_line_exit_2(tmp_path):
    v4l2 = run_cli("-s", str(SOURCE), "--output", "v4l2")
    assert v4l2.returncode == 2 and "v4l2loopback" in v4l2.stderr
    camera = run_cli("-s", str(SOURCE), "--output", "file", "--out", str(tmp_path / "o.mp4"))
    assert camera.returncode == 2 and "cannot open camera 0" in camera.stderr
    assert all(r.stderr.strip().count("\n") == 0 for r in (v4l2, camera))
    assert not (tmp_path / "o.mp4").exists()


def test_live_settings_refuse_conflicting_sources_and_bad_outputs(tmp_path):
    bad = [
        LiveSettings(camera=1, input="clip.mp4"),
        LiveSettings(output="screen"),
        LiveSettings(output="file"),
        LiveSettings(detect_scale=0),
        LiveSettings(camera_size="640"),
    ]
    for settings in bad:
        with pytest.raises(UserError):
            settings.check()
    LiveSettings(output="file", out=tmp_path / "x.mp4", camera_size="640x480").check()


# ------------------------------------------------------------------ the loop, in process


def test_newest_frame_wins_and_replaced_frames_count_as_dropped():
    slot = LatestFrame()
    for i in range(3):
        slot.put(CapturedFrame(np.zeros((2, 2, 3), np.uint8), i, i, time.perf_counter()))
    assert slot.take(0).index == 2
    assert slot.take(0.01) is None
    slot.put(CapturedFrame(np.zeros((2, 2, 3), np.uint8), 3, 3, time.perf_counter()))
    slot.close()
    slot.discard()  # left unprocessed at the end
    assert (slot.captured, slot.dropped, slot.finished) == (4, 3, True)


class ListSink:
    """Keeps what the loop shows, with the source frame index of each."""

    name = "list"

    def __init__(self) -> None:
        self.shown: list[tuple[int, np.ndarray]] = []
        self.opened = self.closed = None

    def open(self, width: int, height: int, fps: float) -> None:
        self.opened = (width, height, fps)

    def show(self, rgb, frame, status: str) -> bool:
        self.shown.append((frame.index, rgb))
        return True

    def close(self, completed: bool) -> None:
        self.closed = completed


class CountingSwapper:
    """The classic swapper, counting its calls."""

    def __init__(self) -> None:
        self.inner = load_swapper("classic")
        self.name, self.resolution = self.inner.name, self.inner.resolution
        self.calls = 0

    def swap(self, crops, identity, target_landmarks=None):
        self.calls += 1
        return self.inner.swap(crops, identity, target_landmarks)

    def blend_masks(self, landmarks, size):
        return self.inner.blend_masks(landmarks, size)


def test_frames_without_a_face_pass_through_with_only_the_watermark(tmp_path, analyser):
    # a face-free clip: the flag behind Grace Hopper, panning (the shuttle model behind the
    # astronaut was used first; MediaPipe takes one of its frames for a face)
    scenery = media.read_image(EXAMPLES_DIR / "grace_hopper.jpg")[:200, :260]
    frames = [np.ascontiguousarray(scenery[:, i * 3 : i * 3 + 192]) for i in range(20)]
    path = write_clip(tmp_path / "scenery.mp4", frames)
    inputs = [f for batch in media.read_frames(path, 8) for f in batch]  # as the loop decodes
    assert not any(analyser.detect(f) for f in inputs)

    swapper = CountingSwapper()
    swap = frame_swapper(SOURCE, swapper, SwapOptions(), analyser, detect_scale=0.5)
    sink = ListSink()
    stats = live_loop(FileSource(path), swap, sink, LiveStats("scenery", "list", swapper.name))

    assert swapper.calls == 0 and sink.closed is True and sink.opened[:2] == (192, 200)
    assert stats.frames_processed == len(sink.shown) == stats.frames_without_face
    assert stats.frames_processed + stats.frames_dropped == stats.frames_captured == 20
    for index, shown in sink.shown:
        assert np.array_equal(shown, embed_watermark(inputs[index]))


def test_stop_event_ends_the_loop_and_closes_the_sink(short_clip, analyser):
    swapper = load_swapper("classic")
    swap = frame_swapper(SOURCE, swapper, SwapOptions(), analyser)
    stop, sink = threading.Event(), ListSink()
    threading.Timer(0.5, stop.set).start()
    stats = live_loop(FileSource(short_clip), swap, sink, LiveStats("clip", "list", "c"), stop)
    assert stats.stopped_by == "interrupted" and sink.closed is True
    assert stats.frames_captured < CUT and len(sink.shown) == stats.frames_processed >= 1


def test_a_url_of_a_recording_is_read_through_opencv_and_replayed_in_real_time(
    short_clip, analyser
):
    assert is_recording_url("https://example.org/talk.mp4?x=1")
    assert not is_recording_url("rtsp://camera.local/stream")
    assert not is_recording_url("https://example.org/live.m3u8")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(short_clip.parent))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{httpd.server_address[1]}/{short_clip.name}"
        swap = frame_swapper(SOURCE, load_swapper("classic"), SwapOptions(), analyser)
        sink = ListSink()
        start = time.perf_counter()
        stats = live_loop(CaptureSource(url, paced=True), swap, sink, LiveStats(url, "list", "c"))
        took = time.perf_counter() - start
        httpd.shutdown()
    assert stats.frames_captured == CUT and stats.stopped_by == "end of input"
    assert took >= (CUT - 1) / 30  # paced: not faster than real time
    assert stats.frames_without_face == 0 and len(sink.shown) == stats.frames_processed


# ------------------------------------------------------------------ who is swapped


def _two_people(analyser, clip_frames, count: int, enter: int) -> list[np.ndarray]:
    """Person A (the clip, a ~100 px face: too small for a half-size detection copy) alone,
    then person B (Grace Hopper, twice as large) entering on the right from `enter` on."""
    b = media.read_image(SOURCE)  # 512x600
    frames = []
    for i in range(count):
        canvas = np.full((600, 900, 3), 90, np.uint8)
        canvas[200:400, 20:220] = cv2.resize(
            clip_frames[i], (200, 200), interpolation=cv2.INTER_AREA
        )
        if i >= enter:
            canvas[:, 380:892] = b
        frames.append(canvas)
    return frames


@pytest.mark.parametrize("detect_scale", [1.0, 0.5])
def test_a_second_face_entering_does_not_steal_the_swap(analyser, clip_frames, detect_scale):
    frames = _two_people(analyser, clip_frames, count=14, enter=4)
    both = analyser.detect(frames[-1])
    assert len(both) == 2
    newcomer = select_faces(both, "one")[0]
    assert newcomer.bbox[0] > 380  # the newcomer is the larger face: "one" alone would pick it

    swap = frame_swapper(
        SOURCE, load_swapper("classic"), SwapOptions(detect_every=2), analyser, detect_scale
    )
    for i, frame in enumerate(frames):
        out, faces = swap(frame)
        assert len(faces) == 1, f"frame {i}"
        assert faces[0].bbox[2] < 340, f"frame {i}: the swap moved to the newcomer"
        if i >= 4:  # the newcomer's face is left as it was (only the watermark's few levels,
            # which since issue 24 follow the texture: 2.4 on average on Grace Hopper's
            # wrinkles and JPEG grain, where the eye does not see them; a swap moves > 5)
            x0, y0, x1, y1 = newcomer.bbox.astype(int)
            region = (slice(y0, y1), slice(x0, x1))
            assert np.abs(out[region].astype(int) - frame[region]).mean() < 3.5
    x0, y0, x1, y1 = faces[0].bbox.astype(int)
    assert np.abs(out[y0:y1, x0:x1].astype(int) - frame[y0:y1, x0:x1]).mean() > 5


def test_scaled_detection_finds_small_faces_on_the_full_frame(clip_frames):
    # HOG (dlib) misses a 65 px face on the half-size copy; MediaPipe would find it there
    analyser = FaceAnalyser(detector="dlib")
    small = np.full((480, 640, 3), 90, np.uint8)
    small[200:330, 300:430] = cv2.resize(clip_frames[0], (130, 130), interpolation=cv2.INTER_AREA)
    assert analyser.detect_boxes(cv2.resize(small, None, fx=0.5, fy=0.5)) == []
    swap = frame_swapper(SOURCE, load_swapper("classic"), SwapOptions(), analyser, 0.5)
    _, faces = swap(small)
    assert len(faces) == 1
