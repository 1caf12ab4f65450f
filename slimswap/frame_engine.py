"""The frame path on one device: frames go up once, faces are found, aligned, swapped, colour
matched and pasted there, and the frames come down once (issue 21).

`pipeline.swap_frames` does the same steps with OpenCV on the host, one face at a time, and is
what a CPU runs; this module is the same flow in torch, batched over every face of a batch of
frames, for a CUDA GPU (it runs on the CPU too, with the torch backend, which is how the tests
hold the two paths to the same pixels):

    decode (worker thread) -> upload (uint8, once) -> BlazeFace + mesh (`MediaPipeAnalyser`,
    torch) -> track/smooth/choose (`VideoFaces.follow`, host: a few numbers per face) ->
    align (grid_sample) -> guide + generator (`TorchSwapper.swap_tensor`) -> masks
    (`face/raster.py`) -> colour, skin tone, detail, paste-back (`face/blend_torch.py`) ->
    download (once) -> invisible marks (worker processes) -> encode (worker thread)

A 4:2:0 video travels as its decoded planes (`media.read_planes`): the YUV <-> RGB
conversions run on the device at upload and download (`video_planes.py`), and the encoder
takes planes (`VideoWriter.write_planes`); the marks' change is carried into Y.

Nothing on this path imports dlib: the source's identity descriptor comes from the torch port
of dlib's ResNet (`nets/identity.py`, 1e-6 from dlib's own). What stays on the host: Poisson
blending and mesh-region masks (`--blend poisson`, `--mask region`: `check_supported` says
so and the CLI runs those jobs on the OpenCV path) and the watermarks, which are per-frame
numpy code run in worker processes (`mark_pool`): on threads they held the GIL for 67 ms a
frame and starved the main thread's analysis post-processing (RESULTS, session 3). The
workers read and mark the frames in shared memory (`provenance/shared_marks.py`): sent to
them pickled, the frames cost the launching thread a third of its pace (session 7).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from slimswap.errors import UserError
from slimswap.face import blend_torch, raster
from slimswap.face.align import estimate_affine, transform_points, warp_batch
from slimswap.face.analyser import Face
from slimswap.face.select import select_faces
from slimswap.face.track import Timer, no_timer
from slimswap.options import PasteOptions, SwapOptions
from slimswap.swap.base import SourceIdentity

# threads converting frames between YUV and RGB at decode and at encode (media.read_frames,
# media.VideoWriter): the conversion costs several times the codec's own work at 1280x720
IO_WORKERS = 4
# batches in shared memory for the mark workers (`provenance/shared_marks.py`): the one being
# downloaded, the one being marked, the one being encoded, one spare (1280x720: 66 MB each)
SHARED_BLOCKS = 4
# SLIMSWAP_SHARED_MARKS=0: frames go to the mark workers pickled, as before (the A/B switch)
_SHARED_MARKS = os.environ.get("SLIMSWAP_SHARED_MARKS", "1") != "0"


def check_supported(paste: PasteOptions, selector: str = "one") -> None:
    """Refuse what the device path does not do (the OpenCV path does), in one line."""
    if paste.blend != "feather":
        raise UserError("--blend poisson runs on the CPU path only (drop --device cuda)")
    if "region" in paste.masks:
        raise UserError("--mask region runs on the CPU path only (drop --device cuda)")
    if selector == "reference":
        raise UserError("--face-selector reference runs on the CPU path only (drop --device cuda)")


@dataclass
class DeviceBatch:
    """A batch of frames on the device: float32 RGB 0..255, one tensor per frame size."""

    groups: list[torch.Tensor]  # (B, 3, H, W)
    where: list[tuple[int, int]]  # frame -> (group, row)
    uploaded: dict  # the analyser runtime's own view of the same upload


class FrameEngine:
    """Swapper, face analysis and paste-back on one torch device (see the module docstring).

    swapper: a `TorchSwapper` on that device (the registry builds it: `load_swapper(mode,
    device, precision)`). detect_every is not used: on a GPU, detecting every frame of a
    batch in one call costs less than tracking frame after frame.
    """

    def __init__(
        self,
        swapper,
        paste: PasteOptions | None = None,
        precision: str = "fp16",
        detector: str = "full",
    ) -> None:
        from slimswap.face.detect_mediapipe import MediaPipeAnalyser
        from slimswap.swap.neural import TorchSwapper

        if not isinstance(swapper, TorchSwapper):
            raise UserError(f"the device frame path needs a torch model; {swapper.name} is not one")
        self.paste = paste or PasteOptions()
        check_supported(self.paste)
        self.swapper = swapper
        self.device = swapper.device
        self.size = swapper.resolution
        self.mp = MediaPipeAnalyser(
            device=str(self.device), detector=detector, runtime="torch", precision=precision
        )
        self.box = raster.box(self.size, self.device)
        self._idnet = None

    # -- who is swapped in

    def identity(self, image: np.ndarray) -> SourceIdentity:
        """The largest face of the source image, its aligned crop and descriptor (torch port)."""
        from slimswap.face.align import align
        from slimswap.nets.identity import DlibResNet

        faces = self.mp.faces_batch([image])[0] or self.mp.faces_batch([image], upsample=1)[0]
        if not faces:
            raise UserError(
                "no face found in the source image; use a clear, frontal photo of one person"
            )
        face = select_faces(faces, "one")[0]
        crop, affine = align(image, face.kps, self.size)
        if self._idnet is None:
            self._idnet = DlibResNet.from_dat().to(self.device).eval()
        with torch.inference_mode():
            x = torch.from_numpy(crop).to(self.device).permute(2, 0, 1)[None].float() / 255
            emb = self._idnet(x)[0].float().cpu().numpy()
        lm = transform_points(face.landmarks, affine).astype(np.float32)
        return SourceIdentity(embedding=emb, crop=crop, landmarks=lm)

    # -- one batch

    def upload(self, frames: Sequence[np.ndarray]) -> DeviceBatch:
        uploaded = self.mp.rt.upload(frames)  # uint8 -> device once; [0, 1] in the nets' dtype
        groups = [(g.float() * 255).round() for g in uploaded["groups"]]
        return DeviceBatch(groups, uploaded["where"], uploaded)

    def upload_planes(self, planes: Sequence[np.ndarray], fmt) -> DeviceBatch:
        """`upload` of decoded I420 planes (`media.read_planes`, all one size): half the bytes
        of RGB go up and the conversion (`video_planes.i420_to_rgb`, fmt: `media.PlaneFormat`)
        runs here instead of on the host's threads."""
        from slimswap.video_planes import i420_to_rgb

        host = torch.from_numpy(np.ascontiguousarray(np.stack(planes)))
        if self.device.type == "cuda":
            host = host.pin_memory()
        rgb = i420_to_rgb(host.to(self.device, non_blocking=True), fmt.matrix, fmt.full_range)
        rt = self.mp.rt
        nets = (rgb * (1 / 255)).to(rt.dtype)
        if self.device.type == "cuda":
            nets = nets.contiguous(memory_format=torch.channels_last)
        where = [(0, i) for i in range(len(planes))]
        return DeviceBatch([rgb], where, {"groups": [nets], "where": where, "pooled": {}})

    @staticmethod
    def download_planes(batch: DeviceBatch) -> list[np.ndarray]:
        """The frames back on the host as the encoder's I420 planes (`video_planes`), one copy
        per frame size: half the bytes of `download`."""
        from slimswap.video_planes import rgb_to_i420

        host = [rgb_to_i420(g).cpu().numpy() for g in batch.groups]
        return [host[g][row] for g, row in batch.where]

    @staticmethod
    def download_into(
        batch: DeviceBatch, rgb: np.ndarray, planes: np.ndarray | None = None
    ) -> bool:
        """`download` (and `download_planes` when `planes` is given) straight into the host
        arrays `rgb` (N, H, W, 3) and `planes` (N, H * 3 / 2, W), rows in frame order: the
        blocks the mark workers share (`provenance/shared_marks.py`). False, and nothing
        copied, where the batch does not fit them (frames of several sizes, another size)."""
        from slimswap.video_planes import rgb_to_i420

        if len(batch.groups) != 1 or batch.where != [(0, i) for i in range(len(batch.where))]:
            return False
        g = batch.groups[0]
        n = g.shape[0]
        if n > rgb.shape[0] or tuple(g.shape[2:]) != rgb.shape[1:3]:
            return False
        torch.from_numpy(rgb[:n]).copy_(FrameEngine._rgb_uint8(g))
        if planes is not None:
            torch.from_numpy(planes[:n]).copy_(rgb_to_i420(g))
        return True

    def faces(
        self, frames: Sequence[np.ndarray], batch: DeviceBatch, upsample: int = 0
    ) -> list[list[Face]]:
        return self.mp.faces_uploaded(frames, batch.uploaded, upsample)

    def _align(
        self, batch: DeviceBatch, affines: list[np.ndarray], index: list[int]
    ) -> torch.Tensor:
        """(N, 3, S, S) crops, float 0..255 whole grey levels, as `align.align` cuts them."""
        out = torch.empty(len(affines), 3, self.size, self.size, device=self.device)
        by_group: dict[int, list[int]] = {}
        for k, i in enumerate(index):
            by_group.setdefault(batch.where[i][0], []).append(k)
        for g, ks in by_group.items():
            rows = [batch.where[index[k]][1] for k in ks]
            crops = warp_batch(
                batch.groups[g], rows, [affines[k] for k in ks], self.size, "reflection"
            )
            out[torch.tensor(ks, device=self.device)] = crops.round().clamp(0, 255)
        return out

    @torch.inference_mode()
    def swap(
        self,
        batch: DeviceBatch,
        faces: Sequence[Sequence[Face]],
        identity: SourceIdentity,
        timer: Timer = no_timer,
    ) -> DeviceBatch:
        """The batch with every given face swapped (the frames stay on the device)."""
        jobs = [(i, f) for i, fs in enumerate(faces) for f in fs]
        if not jobs:
            return batch
        size, dev, sw = self.size, self.device, self.swapper
        with timer("align"):
            affines = [estimate_affine(f.kps, size) for _, f in jobs]
            lms = np.stack(
                [
                    transform_points(f.landmarks, a).astype(np.float32)
                    for (_, f), a in zip(jobs, affines)
                ]
            )
            crops = self._align(batch, affines, [i for i, _ in jobs])
        with timer("swap"):
            region = raster.guide_region(lms, size, dev, sw.openings) if sw.guided else None
            y = sw.swap_tensor(crops / sw.norm.scale - sw.norm.shift, identity, lms, region)
            swapped = ((y + sw.norm.shift) * sw.norm.scale + 0.5).clamp(0, 255).floor()
        with timer("paste"):
            area = raster.area(lms, size, dev)  # the paste mask's and the skin's
            mask = torch.minimum(self.box.expand(len(jobs), -1, -1, -1), area)
            skin = raster.skin(lms, size, dev, area_masks=area)
            if self.paste.color_correction:
                swapped = blend_torch.correct_colour(swapped, crops, mask, skin)
            detail = skin if self.paste.detail else None
            # the target's own mouth and eyes: all of its own detail is right there
            own = raster.openings(lms, size, dev) if self.paste.detail and sw.openings else None
            groups = [g.clone() for g in batch.groups]
            supports = blend_torch.mask_supports(mask)  # one copy to the host for the batch
            for k, (i, _) in enumerate(jobs):  # faces of one frame in turn, as the host path
                g, row = batch.where[i]
                d = None if detail is None else detail[k : k + 1]
                o = None if own is None else own[k : k + 1]
                blend_torch.paste_back(
                    groups[g][row : row + 1], swapped[k : k + 1], affines[k], mask[k : k + 1],
                    d, supports[k], o,
                )  # fmt: skip
        return DeviceBatch(groups, batch.where, batch.uploaded)

    @staticmethod
    def _rgb_uint8(group: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) frames as the host holds them: (B, H, W, 3) uint8 (a view on the
        device; `download` and `download_into` copy it over)."""
        return group.to(torch.uint8).permute(0, 2, 3, 1)

    @staticmethod
    def download(batch: DeviceBatch) -> list[np.ndarray]:
        """The frames back on the host as RGB uint8, one copy per frame size."""
        host = [FrameEngine._rgb_uint8(g).contiguous().cpu().numpy() for g in batch.groups]
        return [host[g][row] for g, row in batch.where]

    def swap_frames(
        self,
        frames: Sequence[np.ndarray],
        faces: Sequence[Sequence[Face]],
        identity: SourceIdentity,
    ) -> list[np.ndarray]:
        """`pipeline.swap_frames` on the device: same arguments and result."""
        return self.download(self.swap(self.upload(frames), faces, identity))


# ----------------------------------------------------------------------------- a whole video


def _prefetch(it: Iterator, depth: int, timer_seconds: defaultdict, stage: str) -> Iterator:
    """Run an iterator on a worker thread, `depth` items ahead; its time is counted apart."""
    q: queue.Queue = queue.Queue(depth)
    done = object()

    def work() -> None:
        try:
            while True:
                t0 = time.perf_counter()
                item = next(it, done)
                timer_seconds[stage] += time.perf_counter() - t0
                q.put(item)
                if item is done:
                    return
        except BaseException as exc:  # noqa: BLE001 (handed to the consumer, raised there)
            q.put(exc)

    threading.Thread(target=work, daemon=True).start()
    while True:
        item = q.get()
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def frame_shapes(planes: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Zero-byte (H, W, 3) stand-ins for frames that exist only as planes on the device: the
    analysis and the tracker read a frame's size, not its pixels, on this path (the one
    selector that reads pixels, `reference`, is refused by `check_supported`)."""
    zero = np.zeros((), np.uint8)
    return [np.broadcast_to(zero, (p.shape[0] * 2 // 3, p.shape[1], 3)) for p in planes]


def _done(value) -> Future:
    f: Future = Future()
    f.set_result((value, 0.0))
    return f


def mark_pool(device: torch.device | str, workers: int | None = None) -> Executor:
    """Where a video's marks run: worker processes next to a GPU (the marks are numpy code that
    holds the GIL long enough to starve the main thread; a frame costs ~1 ms to send and take
    back), threads on a CPU (the cores are busy anyway, and tests start no processes).

    Processes are spawned, not forked: the parent holds a CUDA context, which a fork must not
    inherit. workers: default all cores but four (decode, encode, the main thread, the GPU's
    driver thread), at least two."""
    if torch.device(device).type != "cuda":
        return ThreadPoolExecutor(workers or 2)
    import multiprocessing

    n = workers or max(2, (os.cpu_count() or 4) - 4)
    return ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"))


def start_mark_workers(pool: Executor, frame: np.ndarray, jobs: int = 32) -> None:
    """Mark `frame` `jobs` times and wait: a process pool starts its workers as jobs arrive,
    and each imports numpy and OpenCV first, so a benchmark's clock or a live loop's first
    frames would wait for them (on the H200 the first live frames waited up to 7.9 s)."""
    from slimswap.provenance.watermark import embed_watermark_timed

    for job in [pool.submit(embed_watermark_timed, frame) for _ in range(jobs)]:
        job.result()


@dataclass
class EngineReport:
    frames: int = 0
    faces: int = 0
    frames_with_faces: int = 0
    seconds: float = 0.0
    stage_seconds: dict | None = None  # host-thread seconds per stage (decode/marks/encode overlap)
    # the launching thread's own CPU time: against `seconds` it says whether that thread is
    # slow because it works (its ops cost more) or because it waits (the GIL, the GPU, a core)
    launcher_cpu_seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def swap_video_device(
    engine: FrameEngine,
    identity: SourceIdentity,
    batches: Iterator[list[np.ndarray]],
    frame_count: int,
    options: SwapOptions,
    writer_factory: Callable,
    marks: Executor | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    watermark: bool = True,
    planes=None,
) -> EngineReport:
    """Every frame of `batches` (`media.read_frames`) through the engine into the writer
    `writer_factory()` gives (a `media.VideoWriter`; frame_count: for progress only).

    planes: a `media.PlaneFormat` when `batches` are decoded planes (`media.read_planes`):
    the colour conversions then run on the device both ways and the writer gets planes
    (`VideoWriter.write_planes`); the marks still work on the RGB frame, and their change is
    carried into Y (`yuv.add_luma_change`).

    Decode runs one batch ahead on a thread; marks run on `marks` (default: a `mark_pool` for
    the engine's device, shut down at the end; pass one to share it between videos run at
    once); encoding runs on its own thread, in order. Per-stage seconds: the device stages are
    synchronised (their wall time, as the GPU spent it), the host stages are the threads' own
    time.
    """
    from slimswap.face.track import VideoFaces
    from slimswap.pipeline import StageTimer

    check_supported(options, options.face_selector)
    timer = StageTimer(torch.cuda.synchronize if engine.device.type == "cuda" else None)
    stages = timer.seconds  # the host threads add their own stages' time here too

    faces_in = VideoFaces(None, options.face_selector, None, options.detect_every)  # type: ignore[arg-type]
    report = EngineReport()
    start, cpu_start = time.perf_counter(), time.thread_time()
    batches = _prefetch(iter(batches), 2, stages, "decode")
    from slimswap.provenance.shared_marks import BlockLayout, SharedBatches, mark_shared
    from slimswap.provenance.watermark import embed_watermark_planes_timed, embed_watermark_timed

    own_pool = marks is None or not watermark  # no marks: nothing worth sending to a process
    pool = (mark_pool(engine.device) if watermark else ThreadPoolExecutor(1)) if own_pool else marks
    # worker processes get the frames through shared memory (made at the first batch, when
    # the frame size is known): pickled, they cost the launching thread a third of its pace
    share = watermark and isinstance(pool, ProcessPoolExecutor) and _SHARED_MARKS
    shared: SharedBatches | None = None
    encoded: queue.Queue = queue.Queue(4)
    failure: list[BaseException] = []

    def encode(writer) -> None:
        def write(item: tuple[list[Future], int | None]) -> None:
            jobs, block = item
            frames = []
            for job in jobs:
                if block is None:
                    frame, seconds = job.result()
                    frames.append(frame)
                else:
                    seconds = job.result()
                stages["watermark"] += seconds
            if block is not None:
                rgb, yuv = shared.views[block]  # type: ignore[union-attr]
                frames = list((rgb if planes is None else yuv)[: len(jobs)])
            t0 = time.perf_counter()
            (writer.write if planes is None else writer.write_planes)(frames)
            stages["encode"] += time.perf_counter() - t0

        try:
            while (item := encoded.get()) is not None:
                try:
                    write(item)
                finally:
                    if item[1] is not None:
                        shared.give_back(item[1])  # type: ignore[union-attr]
        except BaseException as exc:  # noqa: BLE001
            failure.append(exc)
            while (item := encoded.get()) is not None:  # drain, so the producer never blocks
                if item[1] is not None:
                    shared.give_back(item[1])  # type: ignore[union-attr]

    with writer_factory() as writer:
        worker = threading.Thread(target=encode, args=(writer,), daemon=True)
        worker.start()
        try:
            for frames in batches:
                with timer("upload"):
                    if planes is None:
                        batch, views = engine.upload(frames), frames
                    else:
                        batch, views = engine.upload_planes(frames, planes), frame_shapes(frames)
                with timer("detect"):
                    found = engine.faces(views, batch, options.upsample)
                chosen = [faces_in.follow(f, fs) for f, fs in zip(views, found)]
                batch = engine.swap(batch, chosen, identity, timer)
                kps = [[x.kps for x in fs] for fs in chosen]
                if share and shared is None:
                    h, w = batch.groups[0].shape[2:]
                    layout = BlockLayout(options.batch_size, h, w, planes is not None)
                    shared = SharedBatches.fitting(layout, SHARED_BLOCKS)
                    share = shared is not None
                block = shared.take() if shared is not None else None  # waits for the encoder
                with timer("download"):
                    if block is not None and not engine.download_into(batch, *shared.views[block]):
                        shared.give_back(block)
                        block = None
                    if block is None:
                        rgb = engine.download(batch) if planes is None or watermark else None
                        out = engine.download_planes(batch) if planes is not None else rgb
                if shared is not None and block is not None:
                    name, layout = shared.name(block), shared.layout
                    jobs = [pool.submit(mark_shared, name, layout, i, k) for i, k in enumerate(kps)]
                elif planes is None:
                    jobs = [
                        pool.submit(embed_watermark_timed, f, k, watermark)
                        for f, k in zip(out, kps)
                    ]
                elif watermark:
                    jobs = [
                        pool.submit(embed_watermark_planes_timed, f, p, k)
                        for f, p, k in zip(rgb, out, kps)
                    ]
                else:
                    jobs = [_done(p) for p in out]
                encoded.put((jobs, block))
                report.frames += len(jobs)
                report.faces += sum(len(fs) for fs in chosen)
                report.frames_with_faces += sum(1 for fs in chosen if fs)
                if failure:
                    raise failure[0]
                if on_progress is not None:
                    on_progress(report.frames, frame_count)
        finally:
            encoded.put(None)
            worker.join()
            if own_pool:
                pool.shutdown()
            if shared is not None:
                shared.close()
        if failure:
            raise failure[0]
    report.seconds = time.perf_counter() - start
    report.launcher_cpu_seconds = time.thread_time() - cpu_start
    report.stage_seconds = stages
    return report


def applies(swapper, options: SwapOptions) -> bool:
    """Whether `slimswap swap` runs a video on this path: a torch model on a CUDA device and
    options it supports (else the OpenCV path runs, as on a CPU)."""
    from slimswap.swap.neural import TorchSwapper

    if not isinstance(swapper, TorchSwapper) or swapper.device.type != "cuda":
        return False
    try:
        check_supported(options, options.face_selector)
    except UserError:
        return False
    return options.detector == "mediapipe"


def swap_video_file(
    source,
    target: Path,
    output: Path,
    swapper,
    options: SwapOptions,
    on_progress: Callable[[int, int], None] | None = None,
):
    """`pipeline.swap_video` on the device path: same checks, labels, atomic output, report."""
    from slimswap import media, pipeline

    start = time.perf_counter()
    output, signer = pipeline._prepare(source, target, output, swapper, options)
    info = media.probe_video(target)
    engine = FrameEngine(swapper, options)
    image = media.read_image(source) if isinstance(source, str | Path) else np.asarray(source)
    identity = engine.identity(image)
    metadata = pipeline.provenance_metadata(swapper) if options.label else None
    sign = signer.sign_file if signer else None
    planes = media.plane_format(target)  # 4:2:0 in: converted on the device both ways
    batches = (
        media.read_planes(target, options.batch_size)
        if planes is not None
        else media.read_frames(target, options.batch_size, workers=IO_WORKERS)
    )
    rep = swap_video_device(
        engine,
        identity,
        batches,
        info.frame_count,
        options,
        lambda: media.VideoWriter(
            output, info, target, metadata=metadata, sign=sign, workers=IO_WORKERS
        ),
        on_progress=on_progress,
        planes=planes,
    )
    return pipeline.SwapReport(
        output=output,
        kind="video",
        frames=rep.frames,
        frames_swapped=rep.frames_with_faces,
        frames_without_face=rep.frames - rep.frames_with_faces,
        faces_swapped=rep.faces,
        seconds=time.perf_counter() - start,
        stage_seconds=dict(rep.stage_seconds or {}),
        swapper=swapper.name,
    )
