"""Where swapped live frames go: a window, a labelled and signed video file, or a v4l2loopback
virtual camera."""

from __future__ import annotations

import fcntl
import os
import re
import struct
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from slimswap import media
from slimswap.errors import UserError
from slimswap.live.sources import CapturedFrame
from slimswap.options import LiveSettings, SwapOptions
from slimswap.pipeline import provenance_metadata, provenance_signer
from slimswap.swap.base import Swapper

# a recording is encoded on the swap's thread: x264's fastest preset (bigger files, a few
# ms a frame at 640x480 instead of ~15 with "veryfast" on this 2-core CPU)
LIVE_X264_PRESET = "ultrafast"


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
