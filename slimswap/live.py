"""Live mode: frames from a camera or a stream, swapped as they come, shown or recorded.

A capture thread reads frames as the source delivers them (a camera, a stream URL, or a
video file replayed in real time at its frame rate) into a one-frame mailbox; the worker
always takes the newest frame, so when swapping is slower than the source the frames in
between are dropped instead of queueing up: latency stays one frame's work, never grows.
Each frame goes through `FrameSwapper` (face/track.py's VideoFaces: full detection every
k frames or when the face is lost, landmarks in between; pipeline.swap_frames; the
invisible watermark on every frame) and then to a sink: a window (with fps and latency
drawn on it), a video file (labelled and C2PA-signed like every output, finished cleanly
on Ctrl-C) or a v4l2loopback virtual camera. Latency (capture to output) and throughput
are measured inside the loop and reported as `LiveStats`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import signal
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

import cv2
import numpy as np

from slimswap import media
from slimswap.errors import UserError
from slimswap.face.analyser import Face, FaceAnalyser
from slimswap.face.select import iou
from slimswap.face.track import Timer, VideoFaces, no_timer
from slimswap.files import atomic_write
from slimswap.options import LiveSettings, Picture, SwapOptions
from slimswap.pipeline import (
    StageTimer,
    _who,
    provenance_metadata,
    provenance_signer,
    swap_frames,
)
from slimswap.provenance import embed_watermark
from slimswap.swap.base import SourceIdentity, Swapper
from slimswap.swap.registry import load_swapper

log = logging.getLogger(__name__)

FIRST_FRAME_TIMEOUT_S = 10.0  # a camera takes a second or two to deliver its first frame
DEFAULT_FPS = 30.0  # for cameras and streams that do not say
# a recording is encoded on the swap's thread: x264's fastest preset (bigger files, a few
# ms a frame at 640x480 instead of ~15 with "veryfast" on this 2-core CPU)
LIVE_X264_PRESET = "ultrafast"
MIN_IOU = 0.3  # a detected box this close to a followed face's predicted box is that face


# ------------------------------------------------------------------ one frame


class ScaledDetection:
    """The analyser, with face detection run on a downscaled copy of the frame.

    HOG detection time falls with the pixel count (640x480: ~25 ms; at half size ~6 ms on
    this 2-core CPU) and it is the slowest step of a detection frame, which sets the p95
    latency. Landmarks and embeddings still run on the full frame, inside the scaled-up
    boxes. The full frame is searched too when the copy shows no face, or misses a face
    being followed (`followed()` gives their boxes): a face too small for the copy (under
    ~80/scale px) is still found, only slower, and a small tracked face is never dropped
    because a bigger one appeared, which would hand the swap to the newcomer.
    """

    def __init__(
        self,
        analyser: FaceAnalyser,
        scale: float = 1.0,
        followed: Callable[[], list[np.ndarray]] = list,
    ) -> None:
        self.analyser = analyser
        self.scale = scale
        self.followed = followed

    def detect_boxes(
        self, frame: np.ndarray, upsample: int | None = None
    ) -> list[tuple[np.ndarray, float]]:
        if self.scale < 1.0:
            small = cv2.resize(
                frame, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA
            )
            found = self.analyser.detect_boxes(small, upsample)
            boxes = [(box / np.float32(self.scale), score) for box, score in found]
            if boxes and all(
                any(iou(seen, box) >= MIN_IOU for box, _ in boxes) for seen in self.followed()
            ):
                return boxes
        return self.analyser.detect_boxes(frame, upsample)

    def __getattr__(self, name: str):
        return getattr(self.analyser, name)


class FrameSwapper:
    """Swaps the frames of one live source, one at a time, in the order they are shown.

    Holds what carries from frame to frame (the tracks, the chosen person, smoothed
    landmarks). Frames without a (chosen) face come back unswapped; every frame comes back
    with the invisible watermark, as every output of slimswap does. The CLI loop and the web
    UI's Live tab both use it, so the page shows what the command writes.
    """

    def __init__(
        self,
        swapper: Swapper,
        identity: SourceIdentity,
        options: SwapOptions,
        analyser: FaceAnalyser,
        reference: np.ndarray | None = None,
        detect_scale: float = 1.0,
    ) -> None:
        self.swapper = swapper
        self.identity = identity
        self.paste = options
        self.analyser = analyser
        detection = ScaledDetection(analyser, detect_scale, self._followed)
        self.faces = VideoFaces(detection, options.face_selector, reference, options.detect_every)
        self.index = 0

    def __call__(self, frame: np.ndarray, timer: Timer = no_timer) -> tuple[np.ndarray, list[Face]]:
        """(the swapped, watermarked frame, the faces swapped in it)."""
        faces = self.faces(self.index, frame, timer)
        self.index += 1
        (out,) = swap_frames([frame], [faces], self.swapper, self.identity, self.paste, timer)
        with timer("watermark"):
            out = embed_watermark(out, [f.kps for f in faces])
        return out, faces

    def _followed(self) -> list[np.ndarray]:
        return [box for _, box in self.faces.schedule.boxes_to_follow(self.faces.tracker)]

    def warm(self) -> None:
        """Run each model once, so the first live frame is not the one that loads them."""
        ident = self.identity
        self.swapper.swap(ident.crop[None], ident, target_landmarks=ident.landmarks[None])
        self.analyser.detect_boxes(np.zeros((64, 64, 3), np.uint8))


def live_swapper(
    mode: str | Path = "auto", device: str = "cpu", torch_threads: bool = True
) -> Swapper:
    """The swapper for a live loop: load_swapper's (hash, template and resolution checked),
    with its CPU work on one thread.

    Live mode swaps one small crop at a time while a capture thread decodes the next frame.
    Thread pools that busy-wait between calls then cost more than they give: on this 2-core
    CPU, under load, ONNX Runtime's default two spinning threads made the lite swap stage
    24 ms a frame against 15 ms with one (and slowed every other stage; 13 -> 20 fps), and
    torch's OpenMP threads, which an ONNX swapper still uses to convert crops, made it 134
    ms against 30 ms. A torch swapper keeps torch's threads: the model itself runs there.
    torch.set_num_threads is process-wide: `torch_threads=False` leaves it alone, for a
    process that does other work too (the web UI's server).

    `auto` is the registry's live choice (registry.resolve_mode with live=True: lite on a
    CPU where one is installed).
    """
    import torch

    from slimswap.swap.neural import TorchSwapper
    from slimswap.swap.registry import SWAP_MODES, resolve_mode

    if str(mode) in SWAP_MODES:
        mode = resolve_mode(str(mode), device, live=True)
    if device != "cpu":
        return load_swapper(mode, device)
    swapper = load_swapper(mode, device, threads=1)
    if torch_threads and not isinstance(swapper, TorchSwapper):
        torch.set_num_threads(1)
    return swapper


def frame_swapper(
    source: Picture,
    swapper: Swapper,
    options: SwapOptions,
    analyser: FaceAnalyser | None = None,
    detect_scale: float = 1.0,
) -> FrameSwapper:
    """A FrameSwapper putting the largest face of `source` into the frames to come."""
    analyser, identity, reference = _who(source, swapper, options, analyser)
    return FrameSwapper(swapper, identity, options, analyser, reference, detect_scale)


# ------------------------------------------------------------------ sources


class FrameSource(Protocol):
    """Frames as they arrive: `read` blocks until the next one and returns None at the end.

    fps: the nominal rate (file output is timed in it). paced: whether the source is a
    recording that the capture thread must replay in real time (frame i at i / fps).
    """

    name: str
    fps: float
    paced: bool

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


def _quiet_opencv() -> None:
    """OpenCV logs warnings of its own for a missing camera; slimswap says it in one line."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


class CaptureSource:
    """A camera (by index) or a URL through OpenCV's VideoCapture (FFmpeg).

    Cameras and live streams are read as they arrive; `paced` marks a URL of a recording,
    which arrives as fast as it downloads and is replayed in real time like a file.
    """

    def __init__(
        self, target: int | str, size: tuple[int, int] | None = None, paced: bool = False
    ) -> None:
        _quiet_opencv()
        self.name = f"camera {target}" if isinstance(target, int) else str(target)
        self.paced = paced
        self._cap = cv2.VideoCapture(target)
        if not self._cap.isOpened():
            self._cap.release()
            if isinstance(target, int):
                raise UserError(
                    f"cannot open camera {target} (is /dev/video{target} a camera, and free?); "
                    "pick another with --camera N, or use --input FILE_OR_URL"
                )
            raise UserError(f"cannot open stream {target}; check the URL (rtsp://, http://...)")
        if size is not None:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 1.0 <= fps <= 240.0 else DEFAULT_FPS

    def read(self) -> np.ndarray | None:
        ok, bgr_frame = self._cap.read()
        return cv2.cvtColor(bgr_frame, cv2.COLOR_BGR2RGB) if ok else None

    def close(self) -> None:
        self._cap.release()


class FileSource:
    """A video file played as a live source: decoded as stored (like `slimswap swap`),
    handed to the capture thread, which releases frame i at i / fps after the first."""

    def __init__(self, path: Path) -> None:
        info = media.probe_video(path)
        self.name = str(path)
        self.fps = float(info.fps)
        self.frame_count = info.frame_count
        self.paced = True
        self._frames = media.read_frames(path, 1)

    def read(self) -> np.ndarray | None:
        batch = next(self._frames, None)
        return batch[0] if batch else None

    def close(self) -> None:
        self._frames.close()


def is_recording_url(url: str) -> bool:
    """An http(s) URL of a video file (.mp4, .mkv, ...): a recording, not a live stream
    (rtsp://, rtmp://, udp://, srt://, HLS .m3u8), so it is replayed in real time."""
    parts = urlparse(url)
    return parts.scheme in ("http", "https") and media.is_video(parts.path)


def open_source(settings: LiveSettings) -> FrameSource:
    """The source the settings name: --input (a file or URL) or --camera (default 0)."""
    if settings.input is None:
        camera = settings.camera if settings.camera is not None else 0
        return CaptureSource(camera, settings.camera_wh())
    if "://" in settings.input:
        return CaptureSource(settings.input, paced=is_recording_url(settings.input))
    path = Path(settings.input)
    if not path.is_file():
        raise UserError(f"--input not found: {path} (give a video file or a stream URL)")
    if not media.is_video(path):
        raise UserError(
            f"--input {path} is not a video ({', '.join(media.VIDEO_EXTS)}); "
            "for a still image use `slimswap swap`"
        )
    return FileSource(path)


@dataclass
class CapturedFrame:
    """One frame as it arrived. index: its number in the source; pts: its slot in the
    source's frame rate (a file's frame index; a camera's arrival time times fps);
    captured: time.perf_counter() when it arrived, where its latency starts."""

    rgb: np.ndarray
    index: int
    pts: int
    captured: float


class LatestFrame:
    """One-frame mailbox between the capture thread and the worker.

    A frame arriving while the previous one is still unprocessed replaces it and the old one
    counts as dropped: the worker always swaps the newest frame and never falls behind.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: CapturedFrame | None = None
        self.closed = False
        self.captured = 0
        self.dropped = 0

    def put(self, frame: CapturedFrame) -> None:
        with self._cond:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self.captured += 1
            self._cond.notify()

    def close(self) -> None:
        """No more frames will come (the source ended or capture stopped)."""
        with self._cond:
            self.closed = True
            self._cond.notify()

    def take(self, timeout: float) -> CapturedFrame | None:
        """The newest frame (removing it), or None if none came within `timeout` seconds."""
        with self._cond:
            if self._frame is None and not self.closed:
                self._cond.wait(timeout)
            frame, self._frame = self._frame, None
            return frame

    @property
    def finished(self) -> bool:
        """Closed and emptied: nothing is left to process."""
        with self._cond:
            return self.closed and self._frame is None

    def discard(self) -> None:
        """Drop an unprocessed frame left at the end (it counts as dropped)."""
        with self._cond:
            if self._frame is not None:
                self.dropped += 1
                self._frame = None


class Capture:
    """The capture thread: reads `source` into a LatestFrame until the source ends or `stop`
    is set, pacing a recording to real time. It owns the source and closes it."""

    def __init__(self, source: FrameSource, stop: threading.Event) -> None:
        self.source = source
        self.stop = stop
        self.slot = LatestFrame()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="slimswap-capture", daemon=True)

    def start(self) -> Capture:
        self._thread.start()
        return self

    def _run(self) -> None:
        fps = self.source.fps
        start: float | None = None
        last_pts = -1
        try:
            index = 0
            while not self.stop.is_set():
                rgb = self.source.read()
                if rgb is None:
                    break
                now = time.perf_counter()
                if start is None:
                    start = now
                if self.source.paced:  # frame i of a recording arrives at start + i / fps
                    due = start + index / fps
                    if due > now and self.stop.wait(due - now):
                        break
                    now = time.perf_counter()
                    pts = index
                else:
                    pts = max(round((now - start) * fps), last_pts + 1)
                last_pts = pts
                self.slot.put(CapturedFrame(rgb, index, pts, now))
                index += 1
        except Exception as err:  # noqa: BLE001 (raised again by the worker, which reports errors)
            self.error = err
        finally:
            try:
                self.source.close()
            finally:
                self.slot.close()

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)
        if self._thread.is_alive():  # a stream read can block for long; the thread is a daemon
            log.warning("capture from %s did not stop within %.0f s", self.source.name, timeout)


# ------------------------------------------------------------------ sinks


class FrameSink(Protocol):
    """Where swapped frames go. `open` before the first frame (its size is known then);
    `show` returns False when the viewer asked to stop (the window was closed)."""

    name: str

    def open(self, width: int, height: int, fps: float) -> None: ...

    def show(self, rgb: np.ndarray, frame: CapturedFrame, status: str) -> bool: ...

    def close(self, completed: bool) -> None: ...


def gui_available() -> bool:
    """Whether this OpenCV can open windows (opencv-python-headless cannot)."""
    found = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    return found is None or found.group(1).upper() != "NONE"


def draw_status(rgb: np.ndarray, status: str) -> np.ndarray:
    """A copy with `status` (fps, latency) written in the top-left corner, for the window only:
    recorded and streamed frames never carry it."""
    out = rgb.copy()
    scale = max(0.5, rgb.shape[0] / 900)
    org = (10, int(30 * scale) + 6)
    thick = max(1, round(2 * scale))
    cv2.putText(
        out, status, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA
    )
    cv2.putText(
        out, status, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 0), thick, cv2.LINE_AA
    )
    return out


class WindowSink:
    """An OpenCV window; q, Esc or closing the window stops the loop."""

    name = "window"
    title = "slimswap live (synthetic) - q to quit"

    def __init__(self) -> None:
        if not gui_available():
            raise UserError(
                "--output window needs OpenCV with GUI support, and this one is "
                "opencv-python-headless; use --output file or v4l2 (or install opencv-python)"
            )

    def open(self, width: int, height: int, fps: float) -> None:
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_AUTOSIZE)
        except cv2.error as err:
            raise UserError(f"cannot open a window (no display?): {err.msg.strip()}") from None

    def show(self, rgb: np.ndarray, frame: CapturedFrame, status: str) -> bool:
        cv2.imshow(self.title, cv2.cvtColor(draw_status(rgb, status), cv2.COLOR_RGB2BGR))
        key = cv2.waitKey(1) & 0xFF
        visible = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1
        return key not in (ord("q"), 27) and visible

    def close(self, completed: bool) -> None:
        cv2.destroyAllWindows()


class FileSink:
    """A video file: each shown frame at the time it was captured (frames dropped in between
    are simply absent, so the file plays in real time), labelled and C2PA-signed like every
    output, written to a temporary file and renamed only when finished."""

    name = "file"

    def __init__(self, path: Path, swapper: Swapper, options: SwapOptions, overwrite: bool) -> None:
        self.path = media.check_output_path(path, overwrite, kind="video")
        self.signer = provenance_signer(self.path, swapper, options)
        self.metadata = provenance_metadata(swapper) if options.label else None
        self.writer: media.VideoWriter | None = None
        self._last_pts = -1

    def open(self, width: int, height: int, fps: float) -> None:
        rate = Fraction(fps).limit_denominator(1001)
        info = media.VideoInfo(width=width, height=height, fps=rate, frame_count=0, duration_s=0.0)
        sign = self.signer.sign_file if self.signer else None
        self.writer = media.VideoWriter(
            self.path, info, None, metadata=self.metadata, preset=LIVE_X264_PRESET, sign=sign
        )
        self.writer.__enter__()

    def show(self, rgb: np.ndarray, frame: CapturedFrame, status: str) -> bool:
        assert self.writer is not None
        pts = max(frame.pts, self._last_pts + 1)
        self.writer.write([rgb], [pts])
        self._last_pts = pts
        return True

    def close(self, completed: bool) -> None:
        if self.writer is None:
            return
        writer, self.writer = self.writer, None
        if completed and writer.frames_written:
            writer.__exit__(None, None, None)
        else:
            writer.__exit__(RuntimeError, RuntimeError("live output abandoned"), None)


# struct v4l2_format for VIDIOC_S_FMT (linux/videodev2.h, 64-bit): u32 type, 4 bytes of
# padding (the union holds pointers), v4l2_pix_format (12 u32), union padded to 200 bytes
VIDIOC_S_FMT = 0xC0D05605  # _IOWR('V', 5, struct v4l2_format), 208 bytes
V4L2_BUF_TYPE_VIDEO_OUTPUT = 2
V4L2_FIELD_NONE = 1
V4L2_COLORSPACE_SRGB = 8
V4L2_PIX_FMT_YUV420 = int.from_bytes(b"YU12", "little")


def v4l2_output_format(width: int, height: int) -> bytes:
    """The VIDIOC_S_FMT argument for I420 frames of this size on a v4l2 output device."""
    pix = (width, height, V4L2_PIX_FMT_YUV420, V4L2_FIELD_NONE, width, width * height * 3 // 2)
    packed = struct.pack(
        "=I4x6I6I", V4L2_BUF_TYPE_VIDEO_OUTPUT, *pix, V4L2_COLORSPACE_SRGB, 0, 0, 0, 0, 0
    )
    return packed.ljust(208, b"\0")


def find_loopback_device() -> Path | None:
    """The first v4l2loopback device (by its sysfs name), if the system has one."""
    for entry in sorted(Path("/sys/class/video4linux").glob("video*")):
        try:
            name = (entry / "name").read_text().strip().lower()
        except OSError:
            continue
        if "loopback" in name or "dummy" in name or "virtual" in name:
            return Path("/dev") / entry.name
    return None


NO_V4L2 = (
    "no v4l2loopback device found (a virtual camera needs the v4l2loopback kernel module: "
    "sudo modprobe v4l2loopback exclusive_caps=1); use --output file or window"
)


class V4l2Sink:
    """A v4l2loopback virtual camera (video-call apps see it as a webcam): through
    pyvirtualcam when it is installed, else by writing I420 frames to the device."""

    name = "v4l2"

    def __init__(self, device: Path | None) -> None:
        self.device = device or find_loopback_device()
        if self.device is None:
            raise UserError(NO_V4L2)
        if not self.device.exists():
            raise UserError(f"{self.device} does not exist; {NO_V4L2}")
        self._cam = None
        self._fd: int | None = None

    def open(self, width: int, height: int, fps: float) -> None:
        try:
            import pyvirtualcam
        except ModuleNotFoundError:
            pyvirtualcam = None
        if pyvirtualcam is not None:
            try:
                self._cam = pyvirtualcam.Camera(width, height, fps, device=str(self.device))
            except RuntimeError as err:
                raise UserError(f"cannot use {self.device} as a virtual camera: {err}") from None
            return
        try:
            self._fd = os.open(self.device, os.O_WRONLY)
            fcntl.ioctl(self._fd, VIDIOC_S_FMT, bytearray(v4l2_output_format(width, height)))
        except OSError as err:
            self.close(False)
            raise UserError(
                f"cannot use {self.device} as a v4l2 output ({err.strerror}); {NO_V4L2}"
            ) from None

    def show(self, rgb: np.ndarray, frame: CapturedFrame, status: str) -> bool:
        if self._cam is not None:
            self._cam.send(np.ascontiguousarray(rgb))
        else:
            assert self._fd is not None
            os.write(self._fd, cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
        return True

    def close(self, completed: bool) -> None:
        if self._cam is not None:
            self._cam.close()
            self._cam = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# ------------------------------------------------------------------ measuring


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


@dataclass
class LiveStats:
    """What one live run did, measured inside the loop.

    latency: capture (the frame handed over by the camera or decoder) to output (the sink
    took the swapped frame), per processed frame. fps: processed frames per second of the
    run (first capture to last output); capture_fps: frames the source delivered per
    second. Every captured frame was processed or dropped: captured == processed + dropped.
    stages_ms: mean time per processed frame in each stage (detect runs every k frames and
    counts as its mean over all frames), and its min, p50 and p95 over the frames it ran in
    (on a loaded machine the min is closest to what the stage costs with a free CPU).
    """

    source: str
    output: str
    swapper: str
    width: int = 0
    height: int = 0
    source_fps: float = 0.0
    detect_every: int = 0
    detect_scale: float = 1.0
    frames_captured: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0
    frames_without_face: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    capture_fps: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    stages_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    stopped_by: str = ""

    def to_json(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lat = self.latency_ms
        return (
            f"{self.frames_processed} of {self.frames_captured} frames swapped "
            f"({self.frames_dropped} dropped, {self.frames_without_face} without a face) "
            f"at {self.fps:.1f} fps; latency p50 {lat.get('p50', float('nan')):.0f} ms, "
            f"p95 {lat.get('p95', float('nan')):.0f} ms ({self.stopped_by})"
        )


class LiveMeter:
    """Per-frame latency and stage times of a running loop, and the status line drawn in
    the window (fps and latency over the last second or so)."""

    def __init__(self, window: int = 30) -> None:
        self.latencies: list[float] = []
        self.stage_times: dict[str, list[float]] = {}
        self.without_face = 0
        self.first_capture: float | None = None
        self.last_output = 0.0
        self._recent: deque[tuple[float, float]] = deque(maxlen=window)

    def add(self, frame: CapturedFrame, timer: StageTimer, faces: int, done: float) -> None:
        n = len(self.latencies)
        if self.first_capture is None:
            self.first_capture = frame.captured
        self.last_output = done
        latency = done - frame.captured
        self.latencies.append(latency)
        self._recent.append((done, latency))
        self.without_face += faces == 0
        for stage in set(self.stage_times) | set(timer.seconds):
            times = self.stage_times.setdefault(stage, [0.0] * n)
            times.append(timer.seconds.get(stage, 0.0))

    def status(self) -> str:
        if len(self._recent) < 2:
            return "starting"
        span = self._recent[-1][0] - self._recent[0][0]
        fps = (len(self._recent) - 1) / span if span > 0 else 0.0
        latency = float(np.median([lat for _, lat in self._recent]))
        return f"{fps:.1f} fps  {latency * 1000:.0f} ms"

    def stats(self, base: LiveStats, captured: int, dropped: int) -> LiveStats:
        processed = len(self.latencies)
        seconds = self.last_output - self.first_capture if self.first_capture else 0.0
        lat_ms = [x * 1000 for x in self.latencies]
        base.frames_captured = captured
        base.frames_processed = processed
        base.frames_dropped = dropped
        base.frames_without_face = self.without_face
        base.seconds = round(seconds, 3)
        base.fps = round(processed / seconds, 2) if seconds > 0 else 0.0
        base.capture_fps = round(captured / seconds, 2) if seconds > 0 else 0.0
        base.latency_ms = {
            "p50": round(_percentile(lat_ms, 50), 1),
            "p95": round(_percentile(lat_ms, 95), 1),
            "mean": round(float(np.mean(lat_ms)), 1) if lat_ms else float("nan"),
            "max": round(max(lat_ms), 1) if lat_ms else float("nan"),
        }
        base.stages_ms = {
            stage: {
                "mean": round(float(np.mean(times)) * 1000, 2),
                "min_when_run": round(min((t for t in times if t > 0), default=0.0) * 1000, 2),
                "p50_when_run": round(_percentile([t for t in times if t > 0], 50) * 1000, 2),
                "p95_when_run": round(_percentile([t for t in times if t > 0], 95) * 1000, 2),
                "runs": sum(t > 0 for t in times),
            }
            for stage, times in sorted(self.stage_times.items())
        }
        return base


# ------------------------------------------------------------------ the loop


@contextmanager
def stop_on_sigint(
    stop: threading.Event, on_stop: Callable[[], None] | None = None
) -> Iterator[None]:
    """The first Ctrl-C sets `stop` (the loop finishes its frame and closes its output
    properly); a second one interrupts at once. Only the main thread can catch signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        if on_stop is not None:
            on_stop()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def live_loop(
    source: FrameSource,
    swap: Callable[[np.ndarray, Timer], tuple[np.ndarray, list[Face]]],
    sink: FrameSink,
    stats: LiveStats,
    stop: threading.Event | None = None,
    seconds: float = 0.0,
    on_start: Callable[[], None] | None = None,
    on_status: Callable[[str], None] | None = None,
) -> LiveStats:
    """Capture from `source` in a thread, swap the newest frame, hand it to `sink`, until
    the source ends, `stop` is set, `seconds` have passed (0: no limit) or the sink says stop.

    `sink` is closed here: completed when the loop ended normally (a file is finished and
    renamed into place), abandoned on an error. Returns `stats` filled in.
    """
    stop = stop or threading.Event()
    capture = Capture(source, stop).start()
    meter = LiveMeter()
    completed = False
    try:
        first = capture.slot.take(FIRST_FRAME_TIMEOUT_S)
        if first is None:
            if capture.error is not None:
                raise capture.error
            raise UserError(f"no frames came from {source.name}")
        height, width = first.rgb.shape[:2]
        stats.width, stats.height, stats.source_fps = width, height, round(source.fps, 3)
        sink.open(width, height, source.fps)
        if on_start is not None:
            on_start()
        deadline = time.perf_counter() + seconds if seconds > 0 else None
        frame: CapturedFrame | None = first
        last_status = 0.0
        while True:
            if frame is not None:
                timer = StageTimer()
                out, faces = swap(frame.rgb, timer)
                with timer("output"):
                    keep = sink.show(out, frame, meter.status())
                meter.add(frame, timer, len(faces), time.perf_counter())
                if not keep:
                    stats.stopped_by = "window closed"
                    break
                if on_status is not None and meter.last_output - last_status >= 1.0:
                    last_status = meter.last_output
                    on_status(meter.status())
            if stop.is_set():
                stats.stopped_by = "interrupted"
                break
            if deadline is not None and time.perf_counter() >= deadline:
                stats.stopped_by = "time limit"
                break
            if capture.slot.finished:
                stats.stopped_by = "end of input"
                break
            frame = capture.slot.take(0.1)
        if capture.error is not None:
            raise capture.error
        if not meter.latencies:
            raise UserError(f"no frames were swapped from {source.name}")
        completed = True
    finally:
        stop.set()
        capture.join()
        sink.close(completed)
    capture.slot.discard()
    return meter.stats(stats, capture.slot.captured, capture.slot.dropped)


def open_sink(settings: LiveSettings, swapper: Swapper) -> FrameSink:
    if settings.output == "window":
        return WindowSink()
    if settings.output == "file":
        assert settings.out is not None
        return FileSink(settings.out, swapper, settings.options(), settings.overwrite)
    return V4l2Sink(settings.out)


def check_output(settings: LiveSettings) -> None:
    """What can be checked about the output before models load and the camera opens."""
    if settings.output == "window":
        WindowSink()
    elif settings.output == "file":
        assert settings.out is not None
        media.check_output_path(settings.out, settings.overwrite, kind="video")
    elif settings.output == "v4l2":
        V4l2Sink(settings.out)
    if settings.stats is not None:
        if not settings.stats.parent.is_dir():
            raise UserError(f"--stats folder does not exist: {settings.stats.parent}")
        if settings.out is not None:
            media.check_not_same(settings.out, settings.stats)


def write_stats(path: Path, stats: LiveStats) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(stats.to_json(), indent=1) + "\n")


def run_live(
    source: Picture,
    settings: LiveSettings,
    swapper: Swapper | None = None,
    analyser: FaceAnalyser | None = None,
    on_start: Callable[[], None] | None = None,
    on_status: Callable[[str], None] | None = None,
) -> LiveStats:
    """`slimswap live`: swap `source`'s face into a live source until it ends or Ctrl-C.

    Checks the output and opens the input first (a missing camera or device fails in a
    second), then loads the model (unless given) and the source face, and loops (see
    live_loop); the stats go to settings.stats as JSON when given.
    """
    settings.check()
    check_output(settings)
    if isinstance(source, (str, Path)) and not Path(source).is_file():
        raise UserError(f"source file not found: {source}")
    frames = open_source(settings)  # a missing camera fails here, before the models load
    try:
        swapper = swapper or live_swapper(settings.mode, settings.device)
        swap = frame_swapper(source, swapper, settings.options(), analyser, settings.detect_scale)
        swap.warm()
        sink = open_sink(settings, swapper)
    except BaseException:
        frames.close()
        raise
    stop = threading.Event()
    stats = LiveStats(
        source=frames.name,
        output=settings.output if settings.out is None else f"{settings.output} {settings.out}",
        swapper=swapper.name,
        detect_every=settings.detect_every,
        detect_scale=settings.detect_scale,
    )
    with stop_on_sigint(stop, lambda: print("stopping (Ctrl-C again to abort)", file=sys.stderr)):
        stats = live_loop(frames, swap, sink, stats, stop, settings.seconds, on_start, on_status)
    if settings.stats is not None:
        write_stats(settings.stats, stats)
    return stats
