"""Reading and writing images and video; the only module that touches media files.

Images are decoded with OpenCV (it honours EXIF orientation and returns None on truncated or
foreign data instead of half an image) and encoded with Pillow (it writes PNG text chunks and
EXIF, which carry the provenance label). Video goes through PyAV: frames are decoded to RGB,
re-encoded as H.264, and the source audio packets are copied untouched so the soundtrack is
bit-identical. Every output is written to a temporary file next to its target and renamed
only when complete, so a crash never leaves a half-written file under the user's name.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import av
import cv2
import numpy as np
from av.video.reformatter import Interpolation
from PIL import Image, PngImagePlugin

from slimswap.errors import UserError
from slimswap.files import atomic_write, temp_path

log = logging.getLogger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")
VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
# Containers that hold H.264 and AAC/MP3/Opus audio; WebM (VP8/9 only) and AVI are read-only.
VIDEO_OUT_EXTS = (".mp4", ".mov", ".mkv", ".m4v")
_MP4_LIKE = (".mp4", ".mov", ".m4v")
_EXIF_IMAGE_DESCRIPTION = 0x010E
# swscale's default YUV->RGB path rounds about one level bright; accurate rounding with full
# chroma makes decode -> encode reproduce the source luma exactly (costs ~1 ms a 512px frame).
SWSCALE_FLAGS = (
    Interpolation.BICUBIC
    | Interpolation.ACCURATE_RND
    | Interpolation.FULL_CHR_H_INT
    | Interpolation.FULL_CHR_H_INP
)

PathLike = str | os.PathLike[str]


# ----------------------------------------------------------------------------- paths


def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise UserError(f"{what} not found: {path}")
    if not path.is_file():
        raise UserError(f"{what} is not a file: {path}")


def check_not_same(inp: PathLike, out: PathLike) -> None:
    """Refuse to write over an input: the output is renamed into place while the input may
    still be read, and the user would lose the original."""
    inp_path, out_path = Path(inp), Path(out)
    same = (
        os.path.samefile(inp_path, out_path)
        if inp_path.exists() and out_path.exists()
        else inp_path.resolve() == out_path.resolve()
    )
    if same:
        raise UserError(f"output {out_path} is the input file; choose another output path")


def check_output_path(
    path: PathLike,
    overwrite: bool = False,
    inputs: Sequence[PathLike] = (),
    kind: Literal["image", "video"] | None = None,
) -> Path:
    """Check a job's output path before any work starts, so a long video job does not fail
    at the very end. Returns the path as a Path."""
    out = Path(path)
    by_kind = {"image": IMAGE_EXTS, "video": VIDEO_OUT_EXTS}
    allowed = by_kind[kind] if kind else IMAGE_EXTS + VIDEO_OUT_EXTS
    if out.suffix.lower() not in allowed:
        raise UserError(
            f"cannot write {out.suffix or 'files without an extension'}: {out}; "
            f"use one of {', '.join(allowed)}"
        )
    for inp in inputs:
        check_not_same(inp, out)
    folder = out.parent
    if not folder.is_dir():
        raise UserError(f"output folder does not exist: {folder} (create it first)")
    if out.is_dir():
        raise UserError(f"output path is a folder: {out}; give a file name")
    if out.exists() and not overwrite:
        raise UserError(f"output exists: {out} (pass --overwrite or choose another name)")
    # os.access says yes to root even on read-only mounts, so try creating a file instead.
    probe = temp_path(out)
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as err:
        raise UserError(f"output folder is not writable: {folder} ({err.strerror})") from None
    os.close(fd)
    probe.unlink(missing_ok=True)
    return out


# ----------------------------------------------------------------------------- images


def read_image(path: PathLike) -> np.ndarray:
    """RGB uint8 (H, W, 3); alpha is dropped and grey images become three channels."""
    p = Path(path)
    _require_file(p, "image")
    if p.suffix.lower() not in IMAGE_EXTS:
        raise UserError(
            f"unsupported image type {p.suffix or '(none)'}: {p}; use {', '.join(IMAGE_EXTS)}"
        )
    data = np.fromfile(p, np.uint8)  # imread cannot open non-ASCII paths on every platform
    bgr_image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr_image is None:
        raise UserError(f"cannot decode image (corrupt, truncated or not an image): {p}")
    return cv2.cvtColor(bgr_image, cv2.COLOR_BGR2RGB)


def _encode_image(suffix: str, rgb: np.ndarray, metadata: dict[str, str] | None) -> bytes:
    """PNG keeps metadata as text chunks (one per key); JPEG and WebP keep it as JSON in the
    EXIF ImageDescription tag, the one text field both formats carry."""
    image = Image.fromarray(rgb, "RGB")
    buf = io.BytesIO()
    if suffix == ".png":
        info = PngImagePlugin.PngInfo()
        for key, value in (metadata or {}).items():
            info.add_text(str(key), str(value))
        image.save(buf, format="PNG", pnginfo=info)
    else:
        exif = Image.Exif()
        if metadata:
            exif[_EXIF_IMAGE_DESCRIPTION] = json.dumps(metadata)  # EXIF text is ASCII
        fmt = "JPEG" if suffix in (".jpg", ".jpeg") else "WEBP"
        image.save(buf, format=fmt, quality=95, exif=exif)
    return buf.getvalue()


def write_image(
    path: PathLike,
    rgb: np.ndarray,
    metadata: dict[str, str] | None = None,
    sign: Callable[[bytes, str], bytes] | None = None,
) -> None:
    """Write atomically: encode in memory, write a temp file beside the target, rename.

    `sign(encoded, suffix)` returns the final bytes (the C2PA manifest binds exactly them).
    """
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in IMAGE_EXTS:
        raise UserError(
            f"cannot write image type {out.suffix or '(none)'}: {out}; use {', '.join(IMAGE_EXTS)}"
        )
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"write_image expects RGB uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
    data = _encode_image(suffix, np.ascontiguousarray(rgb), metadata)
    if sign is not None:
        data = sign(data, suffix)
    try:
        with atomic_write(out) as tmp:
            tmp.write_bytes(data)
    except OSError as err:
        raise UserError(f"cannot write {out}: {err.strerror}") from None


def read_image_metadata(path: PathLike) -> dict[str, str]:
    """The metadata `write_image` stored (PNG text chunks or JSON in EXIF); {} if none."""
    p = Path(path)
    _require_file(p, "image")
    try:
        with Image.open(p) as image:
            if image.format == "PNG":
                return {str(k): str(v) for k, v in getattr(image, "text", {}).items()}
            description = image.getexif().get(_EXIF_IMAGE_DESCRIPTION)
    except (OSError, SyntaxError) as err:
        raise UserError(f"cannot read image metadata (corrupt or not an image): {p}") from err
    try:
        meta = json.loads(description) if description else {}
    except json.JSONDecodeError:
        return {}
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


# ----------------------------------------------------------------------------- video


def is_video(path: PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTS


@dataclass(frozen=True)
class VideoInfo:
    """What a video job needs to know about its input before decoding it.

    rotation is the counter-clockwise display rotation in degrees (PyAV's convention), in
    (-180, 180]. Frames are decoded as stored, and the writer re-attaches the same rotation
    so the output plays the way the input did; a pipeline that needs upright faces rotates
    frames itself (np.rot90) and rotates them back before writing.
    """

    width: int
    height: int
    fps: Fraction
    frame_count: int
    duration_s: float
    rotation: int = 0
    has_audio: bool = False
    audio_codec: str | None = None
    video_codec: str = ""
    tags: dict[str, str] = field(default_factory=dict)


def _open_input(p: Path) -> av.container.InputContainer:
    _require_file(p, "video")
    try:
        return av.open(str(p), "r")
    except av.FFmpegError as err:
        raise UserError(f"cannot open video (corrupt or not a video): {p}") from err


def _video_stream(container: av.container.InputContainer, p: Path) -> av.VideoStream:
    if not container.streams.video:
        raise UserError(f"no video stream in {p}")
    return container.streams.video[0]


def _count_frames(container: av.container.InputContainer, stream: av.VideoStream) -> int:
    """Demux (no decoding) to count frames when the container has no frame count (MKV, WebM)."""
    return sum(1 for packet in container.demux(stream) if packet.size)


def _normalise_rotation(degrees: float) -> int:
    """Into (-180, 180], so 180 and -180 (the same matrix) compare equal."""
    r = round(degrees) % 360
    return r - 360 if r > 180 else r


def probe_video(path: PathLike) -> VideoInfo:
    """Read the stream parameters and decode the first frame (which proves the file decodes
    and carries the display rotation)."""
    p = Path(path)
    with _open_input(p) as container:
        stream = _video_stream(container, p)
        fps = stream.average_rate or stream.guessed_rate or stream.base_rate
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as err:
            raise UserError(f"cannot decode video (corrupt): {p}") from err
        if first is None or fps is None or fps <= 0:
            raise UserError(f"video has no decodable frames: {p}")
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        frame_count = stream.frames
        if not frame_count:
            container.seek(0)
            frame_count = _count_frames(container, stream)
        audio = container.streams.audio[0] if container.streams.audio else None
        return VideoInfo(
            width=first.width,
            height=first.height,
            fps=Fraction(fps),
            frame_count=int(frame_count),
            duration_s=duration or frame_count / float(fps),
            rotation=_normalise_rotation(first.rotation),
            has_audio=audio is not None,
            audio_codec=audio.codec_context.name if audio is not None else None,
            video_codec=stream.codec_context.name,
            tags={str(k): str(v) for k, v in container.metadata.items()},
        )


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24", interpolation=SWSCALE_FLAGS)


def _decoded_batches(
    path: PathLike, batch_size: int, convert: Callable[[list[av.VideoFrame]], list[np.ndarray]]
) -> Iterator[list[np.ndarray]]:
    """Decoded frames in batches of `batch_size` (the last may be shorter), decode order, each
    batch through `convert`; a decoding failure is a UserError naming the file. What
    read_frames and read_planes share."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    p = Path(path)
    with _open_input(p) as container:
        stream = _video_stream(container, p)
        stream.thread_type = "AUTO"
        batch: list[av.VideoFrame] = []
        try:
            for frame in container.decode(stream):
                batch.append(frame)
                if len(batch) == batch_size:
                    yield convert(batch)
                    batch = []
            if batch:
                yield convert(batch)
        except av.FFmpegError as err:
            raise UserError(f"video decoding failed (corrupt file?): {p}: {err}") from err


def read_frames(path: PathLike, batch_size: int, workers: int = 1) -> Iterator[list[np.ndarray]]:
    """RGB uint8 frames in decode order, in batches so a swapper sees many crops per call.

    Frames come as stored (no rotation applied); every decoded frame is yielded, so the
    count matches the writer's one-output-frame-per-input-frame rule. workers > 1 converts
    each batch's frames to RGB on that many threads: the accurate YUV -> RGB conversion costs
    several times the decoding itself (16 vs 2.5 ms a 1280x720 frame here) and swscale runs
    without the GIL; a GPU frame path needs it (the CPU path has no spare core for it).
    """
    pool = ThreadPoolExecutor(workers) if workers > 1 else None

    def converted(batch: list[av.VideoFrame]) -> list[np.ndarray]:
        return list(pool.map(_rgb, batch)) if pool else [_rgb(f) for f in batch]

    try:
        yield from _decoded_batches(path, batch_size, converted)
    finally:
        if pool:
            pool.shutdown(wait=False)


@dataclass(frozen=True)
class PlaneFormat:
    """How a video's 4:2:0 planes turn into the RGB `read_frames` gives (`video_planes`)."""

    matrix: str  # a key of yuv.KR_KB
    full_range: bool


def plane_format(path: PathLike) -> PlaneFormat | None:
    """The video's planes' format when the GPU frame path can take them as they are decoded
    (8-bit 4:2:0, even size, limited range or a yuvj format), else None (read_frames then).

    The matrix follows the first frame's colour tag, as swscale's conversion in `_rgb` does
    (untagged: BT.601). A yuv420p stream tagged full range is left to swscale (None)."""
    from slimswap.yuv import COLORSPACES

    with contextlib.closing(_decoded_batches(path, 1, list)) as first:
        frame = next((batch[0] for batch in first), None)
    if frame is None or frame.width % 2 or frame.height % 2:
        return None
    full = frame.format.name == "yuvj420p"
    if not full and (frame.format.name != "yuv420p" or int(frame.color_range) == 2):  # JPEG
        return None
    return PlaneFormat(COLORSPACES.get(int(frame.colorspace), "bt601"), full)


def read_planes(path: PathLike, batch_size: int) -> Iterator[list[np.ndarray]]:
    """`read_frames` without the colour conversion: each frame's I420 planes as one
    (H * 3 / 2, W) uint8 array (`video_planes`), for a device that converts them itself.
    Only for a video `plane_format` accepts."""
    yield from _decoded_batches(
        path, batch_size, lambda batch: [f.to_ndarray(format="yuv420p") for f in batch]
    )


class VideoWriter:
    """H.264 writer that carries the source's audio, rotation and frame rate over.

    Usage::

        with VideoWriter(out, info, source_path=inp, metadata={...}) as writer:
            for batch in read_frames(inp, 16):
                writer.write(swap(batch))

    Frame i gets pts i in a 1/fps time base, so the output has exactly one frame per written
    frame at the source's (average) rate; a variable-frame-rate source comes out constant.
    libx264 with yuv420p needs even sizes, so an odd width or height is cropped by one pixel
    (the last column/row): `writer.width`/`writer.height` give the written size. Audio
    packets of the first audio stream are copied unchanged (other streams are dropped).
    Colour is written as BT.709 limited range and tagged as such. `sign(finished, signed)`
    writes a signed copy of the finished temp file (C2PA), which is what gets renamed.
    """

    def __init__(
        self,
        out_path: PathLike,
        info: VideoInfo,
        source_path: PathLike | None,
        metadata: dict[str, str] | None = None,
        crf: int = 18,
        preset: str = "veryfast",
        sign: Callable[[Path, Path], None] | None = None,
        workers: int = 1,
    ) -> None:
        self.out_path = Path(out_path)
        # workers > 1: each write's RGB -> YUV conversions on that many threads (read_frames)
        self._pool = ThreadPoolExecutor(workers) if workers > 1 else None
        self.sign = sign
        self.info = info
        self.source_path = Path(source_path) if source_path is not None else None
        self.metadata = dict(metadata or {})
        self.crf = crf
        self.preset = preset
        self.width = info.width - info.width % 2
        self.height = info.height - info.height % 2
        self.frames_written = 0
        self._next_pts = 0  # the slot after the last frame written
        self._file: atomic_write | None = None
        self._out: av.container.OutputContainer | None = None
        self._src: av.container.InputContainer | None = None
        self._video: av.VideoStream | None = None
        self._audio_out: av.AudioStream | None = None
        self._audio_packets: Iterator[av.Packet] | None = None
        self._pending_audio: av.Packet | None = None

    # -- lifecycle

    def __enter__(self) -> Self:
        suffix = self.out_path.suffix.lower()
        if suffix not in VIDEO_OUT_EXTS:
            raise UserError(
                f"cannot write video type {self.out_path.suffix or '(none)'}: {self.out_path}; "
                f"use {', '.join(VIDEO_OUT_EXTS)}"
            )
        if self.width < 2 or self.height < 2:
            raise UserError(f"video too small to encode: {self.info.width}x{self.info.height}")
        self._file = atomic_write(self.out_path)
        try:
            self._open(suffix)
        except BaseException:
            self._abort()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        if exc_type is not None:
            self._abort()
            return
        try:
            self._finish()
        except BaseException:
            self._abort()
            raise

    def _open(self, suffix: str) -> None:
        options = {"movflags": "faststart+use_metadata_tags"} if suffix in _MP4_LIKE else {}
        try:
            self._out = av.open(str(self._file.path), "w", options=options)
        except (av.FFmpegError, OSError) as err:
            raise UserError(f"cannot create {self.out_path}: {err}") from err
        for key, value in self.metadata.items():
            self._out.metadata[str(key)] = str(value)
        video = self._out.add_stream(
            "libx264", rate=self.info.fps, options={"crf": str(self.crf), "preset": self.preset}
        )
        video.width, video.height, video.pix_fmt = self.width, self.height, "yuv420p"
        video.time_base = Fraction(1) / self.info.fps
        video.codec_context.time_base = Fraction(1) / self.info.fps
        cc = video.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 1, 1, 1, 1  # BT.709
        if self.info.rotation:
            video.set_display_rotation(self.info.rotation)
        self._video = video
        if self.source_path is not None and self.info.has_audio:
            self._add_audio(suffix)
        try:  # writes the header now, so a codec the container refuses fails before decoding
            self._out.start_encoding()
        except av.FFmpegError as err:
            audio = f" with {self.info.audio_codec} audio" if self._audio_out else ""
            raise UserError(
                f"cannot write H.264{audio} into {suffix}: {err}; try .mkv instead"
            ) from err

    def _add_audio(self, suffix: str) -> None:
        assert self.source_path is not None and self._out is not None
        self._src = _open_input(self.source_path)
        if not self._src.streams.audio:
            return
        audio_in = self._src.streams.audio[0]
        try:
            self._audio_out = self._out.add_stream_from_template(audio_in)
        except ValueError as err:
            raise UserError(
                f"the source audio ({audio_in.codec_context.name}) cannot be stored in "
                f"{suffix} without re-encoding; write to .mkv instead"
            ) from err
        self._audio_packets = (p for p in self._src.demux(audio_in) if p.size and p.dts is not None)

    def _abort(self) -> None:
        """Close everything and delete the temp file; the target is never touched."""
        for container in (self._out, self._src):
            if container is not None:
                try:
                    container.close()
                except Exception:  # already failing; the original error matters more
                    log.debug("closing %s failed during abort", container, exc_info=True)
        self._out = self._src = None
        if self._file is not None:
            self._file.discard()

    def _finish(self) -> None:
        assert self._out is not None and self._video is not None and self._file is not None
        if self.frames_written == 0:
            raise ValueError("VideoWriter closed without any frames written")
        self._out.mux(self._video.encode(None))
        self._mux_audio_until(None)
        try:  # the mov muxer rejects some copied audio (e.g. stereo PCM) only in its trailer
            self._out.close()
        except av.FFmpegError as err:
            raise UserError(f"cannot finish {self.out_path}: {err}; try .mkv instead") from err
        self._out = None
        if self._src is not None:
            self._src.close()
            self._src = None
        if self.sign is not None:  # C2PA binds the finished bytes: sign into a second temp
            signed = temp_path(self.out_path)
            try:
                self.sign(self._file.path, signed)
                os.replace(signed, self._file.path)
            finally:
                signed.unlink(missing_ok=True)
        self._file.commit()

    # -- writing

    def write(self, frames: Iterable[np.ndarray], pts: Iterable[int] | None = None) -> None:
        """Encode RGB uint8 frames of the source size, in order.

        pts: each frame's time in frames of the source rate (default: the next slot, one
        frame after another). A live recording that dropped frames passes the slots its
        frames were captured in, so the file keeps real time without repeating frames.
        """
        if self._out is None or self._video is None:
            raise RuntimeError("VideoWriter.write called outside its `with` block")
        if self._pool is not None:
            frames = list(frames)
            for k, rgb in enumerate(frames):
                self._check(rgb, self.frames_written + k)
            converted = self._pool.map(self._yuv, frames)
        else:
            converted = (self._yuv(self._check(rgb, self.frames_written)) for rgb in frames)
        self._encode(converted, pts)

    def write_planes(self, planes: Iterable[np.ndarray], pts: Iterable[int] | None = None) -> None:
        """`write` for frames already converted (`video_planes.rgb_to_i420`): I420 uint8
        arrays of the written size, (height * 3 / 2, width), BT.709 limited range."""
        if self._out is None or self._video is None:
            raise RuntimeError("VideoWriter.write_planes called outside its `with` block")
        shape = (self.height * 3 // 2, self.width)

        def frame(k: int, yuv: np.ndarray) -> av.VideoFrame:
            if yuv.shape != shape or yuv.dtype != np.uint8:
                raise ValueError(
                    f"planes of frame {self.frames_written + k} are {yuv.dtype} {yuv.shape}, "
                    f"expected uint8 {shape}"
                )
            return av.VideoFrame.from_ndarray(np.ascontiguousarray(yuv), format="yuv420p")

        self._encode((frame(k, p) for k, p in enumerate(planes)), pts)

    def _encode(self, converted: Iterable[av.VideoFrame], pts: Iterable[int] | None) -> None:
        assert self._out is not None and self._video is not None
        slots = iter(pts) if pts is not None else None
        for frame in converted:
            slot = self._next_pts if slots is None else int(next(slots))
            if slot < self._next_pts:
                raise ValueError(f"frame pts {slot} is not after the previous frame's")
            frame.pts = slot
            frame.time_base = self._video.codec_context.time_base
            self._out.mux(self._video.encode(frame))
            self.frames_written += 1
            self._next_pts = slot + 1
            self._mux_audio_until(self._next_pts / self.info.fps)

    def _check(self, rgb: np.ndarray, index: int) -> np.ndarray:
        if rgb.shape != (self.info.height, self.info.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(
                f"frame {index} is {rgb.dtype} {rgb.shape}, expected uint8 "
                f"{(self.info.height, self.info.width, 3)}"
            )
        return rgb

    def _yuv(self, rgb: np.ndarray) -> av.VideoFrame:
        """An RGB frame as the encoder's BT.709 limited-range yuv420p (cropped to even size)."""
        frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(rgb[: self.height, : self.width]), format="rgb24"
        )
        return frame.reformat(
            format="yuv420p",
            dst_colorspace="ITU709",
            dst_color_range="MPEG",
            interpolation=SWSCALE_FLAGS,
        )

    def _mux_audio_until(self, t: Fraction | None) -> None:
        """Copy source audio packets up to time t (None: all), interleaving them with video
        so the muxer does not have to buffer the whole soundtrack."""
        if self._audio_packets is None or self._audio_out is None or self._out is None:
            return
        while True:
            packet = self._pending_audio or next(self._audio_packets, None)
            self._pending_audio = None
            if packet is None:
                self._audio_packets = None
                return
            if t is not None and packet.dts * packet.time_base > t:
                self._pending_audio = packet
                return
            packet.stream = self._audio_out
            self._out.mux(packet)
