"""One live frame: detection on a scaled copy, the swap and the watermark (FrameSwapper; on a
CUDA GPU DeviceFrameSwapper, the GPU frame path one frame at a time), and the swapper a live
loop runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from slimswap.errors import UserError
from slimswap.face.analyser import Face, FaceAnalyser
from slimswap.face.select import iou
from slimswap.face.track import Timer, VideoFaces, no_timer
from slimswap.options import Picture, SwapOptions
from slimswap.pipeline import _who, paste_crops, swap_crops
from slimswap.provenance import embed_watermark
from slimswap.swap.base import SourceIdentity, Swapper
from slimswap.swap.registry import load_swapper

MIN_IOU = 0.3  # a detected box this close to a followed face's predicted box is that face


class ScaledDetection:
    """The analyser, with face detection run on a downscaled copy of the frame.

    Detection time falls with the pixel count (dlib's HOG: 640x480 ~25 ms, at half size
    ~6 ms on this 2-core CPU) and it is the slowest step of a detection frame, which sets
    the p95 latency. Landmarks and embeddings still run on the full frame, inside the scaled-up
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
        return self.back(self.front(frame, timer), timer)

    def front(self, frame: np.ndarray, timer: Timer = no_timer) -> tuple:
        """The first half of a frame: faces found, aligned and swapped (the model's work)."""
        faces = self.faces(self.index, frame, timer)
        self.index += 1
        jobs, swapped = swap_crops([frame], [faces], self.swapper, self.identity, timer)
        return frame, faces, jobs, swapped

    def back(self, state: tuple, timer: Timer = no_timer) -> tuple[np.ndarray, list[Face]]:
        """The second half: paste-back and the watermark. `live_loop` runs it on another
        thread than `front`, one frame behind, so both CPU cores work on the stream."""
        frame, faces, jobs, swapped = state
        (out,) = paste_crops([frame], jobs, swapped, self.swapper, self.paste, timer)
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


class DeviceFrameSwapper:
    """`FrameSwapper`'s contract on the GPU frame path (`frame_engine`): the frame goes up once,
    is analysed, swapped and pasted there, and comes down once; its marks run in a worker
    process while the next frame is on the GPU.

    front (the live loop's worker thread) does the GPU half and hands the marks to `marks`;
    back (the loop's own thread) waits for them. A frame's latency is front + marks, the pace
    the slower of the GPU half and the marks over the pool's workers.
    """

    def __init__(self, engine, identity: SourceIdentity, options: SwapOptions, marks) -> None:
        self.engine = engine
        self.identity = identity
        self.options = options
        self.faces = VideoFaces(None, options.face_selector, None, options.detect_every)  # type: ignore[arg-type]
        self.marks = marks

    def __call__(self, frame: np.ndarray, timer: Timer = no_timer) -> tuple[np.ndarray, list[Face]]:
        return self.back(self.front(frame, timer), timer)

    def front(self, frame: np.ndarray, timer: Timer = no_timer) -> tuple:
        from slimswap.provenance.watermark import embed_watermark_timed

        e = self.engine
        with timer("upload"):
            batch = e.upload([frame])
        with timer("detect"):
            found = e.faces([frame], batch, self.options.upsample)[0]
        chosen = self.faces.follow(frame, found)
        batch = e.swap(batch, [chosen], self.identity, timer)
        with timer("download"):
            (out,) = e.download(batch)
        return self.marks.submit(embed_watermark_timed, out, [f.kps for f in chosen]), chosen

    def back(self, state: tuple, timer: Timer = no_timer) -> tuple[np.ndarray, list[Face]]:
        job, chosen = state
        with timer("watermark"):
            out, _ = job.result()
        return out, chosen

    def warm(self) -> None:
        """Kernels, cuDNN's choices and the mark workers' imports, before the first frame."""
        from slimswap.frame_engine import start_mark_workers

        frame = np.ascontiguousarray(np.pad(self.identity.crop, ((64, 64), (64, 64), (0, 0))))
        for _ in range(2):
            self(frame)
        start_mark_workers(self.marks, frame, jobs=8)

    def close(self) -> None:
        self.marks.shutdown()


def device_frame_swapper(
    source: Picture | SourceIdentity, swapper: Swapper, options: SwapOptions
) -> DeviceFrameSwapper:
    """A DeviceFrameSwapper for `source` (a photo, or an identity computed elsewhere: the GPU
    machine has no dlib model files, see bench_frame_path.save_identity)."""
    from slimswap.frame_engine import FrameEngine, mark_pool

    engine = FrameEngine(swapper, options)
    if isinstance(source, SourceIdentity):
        identity = source
    else:
        from slimswap.pipeline import _read

        identity = engine.identity(_read(source))
    return DeviceFrameSwapper(engine, identity, options, mark_pool(engine.device, workers=3))


def frame_swapper(
    source: Picture | SourceIdentity,
    swapper: Swapper,
    options: SwapOptions,
    analyser: FaceAnalyser | None = None,
    detect_scale: float = 1.0,
) -> FrameSwapper | DeviceFrameSwapper:
    """What puts the largest face of `source` into the frames to come: the GPU frame path
    where it applies (`frame_engine.applies`: a torch model on CUDA), else a FrameSwapper."""
    from slimswap.frame_engine import applies

    if applies(swapper, options) and analyser is None:
        return device_frame_swapper(source, swapper, options)
    if isinstance(source, SourceIdentity):
        raise UserError("a precomputed source identity needs the GPU frame path (--device cuda)")
    analyser, identity, reference = _who(source, swapper, options, analyser)
    return FrameSwapper(swapper, identity, options, analyser, reference, detect_scale)
