"""Where live frames come from (a camera, a stream URL, a video file replayed in real time) and
the capture thread that hands the newest one to the worker (LatestFrame: frames the worker
cannot keep up with are dropped, never queued)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

import cv2
import numpy as np

from slimswap import media
from slimswap.errors import UserError
from slimswap.options import LiveSettings

DEFAULT_FPS = 30.0  # for cameras and streams that do not say

log = logging.getLogger(__name__)


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
