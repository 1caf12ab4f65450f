"""The live loop: capture in a thread, swap the newest frame, hand it to the sink, measure
latency and throughput (LiveStats), stop on Ctrl-C, the end of the input or a time limit."""

from __future__ import annotations

import json
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from slimswap.errors import UserError
from slimswap.face.analyser import Face, FaceAnalyser
from slimswap.face.track import Timer
from slimswap.files import atomic_write
from slimswap.live.frames import frame_swapper, live_swapper
from slimswap.live.sinks import FrameSink, check_output, open_sink
from slimswap.live.sources import Capture, CapturedFrame, FrameSource, open_source
from slimswap.options import LiveSettings, Picture
from slimswap.pipeline import StageTimer
from slimswap.swap.base import SourceIdentity, Swapper

FIRST_FRAME_TIMEOUT_S = 10.0  # a camera takes a second or two to deliver its first frame


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


def _stopped(capture: Capture, stop: threading.Event, deadline: float | None) -> str:
    if stop.is_set():
        return "interrupted"
    if deadline is not None and time.perf_counter() >= deadline:
        return "time limit"
    if capture.slot.finished:
        return "end of input"
    return ""


def _swapped(
    capture: Capture,
    first: CapturedFrame,
    swap,
    stop: threading.Event,
    deadline: float | None,
    stats: LiveStats,
) -> Iterator[tuple[CapturedFrame, StageTimer, tuple[np.ndarray, list[Face]]]]:
    """(frame, its stage times, (swapped frame, faces)) for the newest frames, in order.

    A swap with two halves (`FrameSwapper.front`/`back`) runs them on two threads, one frame
    apart: while this thread pastes and marks frame n (and the caller shows it), a worker
    finds the faces of frame n+1 and runs the model on them. On a 2-core CPU each half has
    a core, so the loop runs at the pace of the slower half instead of their sum; a frame
    still passes through both, so its latency is the sum. Anything else runs in this thread.
    Sets stats.stopped_by when the input ends or the loop is stopped or out of time.
    """
    if not hasattr(swap, "front"):
        frame: CapturedFrame | None = first
        while True:
            if frame is not None:
                timer = StageTimer()
                yield frame, timer, swap(frame.rgb, timer)
            if reason := _stopped(capture, stop, deadline):
                stats.stopped_by = reason
                return
            frame = capture.slot.take(0.1)
    handoff: queue.Queue = queue.Queue(maxsize=1)
    end = object()
    halt = threading.Event()  # the consumer stopped early (window closed, an error)

    def produce() -> None:
        frame: CapturedFrame | None = first
        try:
            while not halt.is_set():
                if frame is not None:
                    timer = StageTimer()
                    handoff.put((frame, timer, swap.front(frame.rgb, timer)))
                    handoff.join()  # the next frame is taken only once this one is: fresh
                if reason := _stopped(capture, stop, deadline):
                    stats.stopped_by = reason
                    break
                frame = capture.slot.take(0.1)
        except BaseException as exc:  # noqa: BLE001 (raised in the consumer's thread)
            handoff.put(exc)
            return
        handoff.put(end)

    worker = threading.Thread(target=produce, name="live-front", daemon=True)
    worker.start()
    try:
        while (item := handoff.get()) is not end:
            handoff.task_done()
            if isinstance(item, BaseException):
                raise item
            frame, timer, state = item
            yield frame, timer, swap.back(state, timer)
    finally:
        halt.set()
        while worker.is_alive():  # let a producer blocked on the hand-off finish
            try:
                handoff.get(timeout=0.05)
                handoff.task_done()
            except queue.Empty:
                pass
        worker.join()


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
        last_status = 0.0
        for frame, timer, result in _swapped(capture, first, swap, stop, deadline, stats):
            out, faces = result
            with timer("output"):
                keep = sink.show(out, frame, meter.status())
            meter.add(frame, timer, len(faces), time.perf_counter())
            if not keep:
                stats.stopped_by = "window closed"
                break
            if on_status is not None and meter.last_output - last_status >= 1.0:
                last_status = meter.last_output
                on_status(meter.status())
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


def write_stats(path: Path, stats: LiveStats) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(stats.to_json(), indent=1) + "\n")


def run_live(
    source: Picture | SourceIdentity,
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
    try:
        with stop_on_sigint(
            stop, lambda: print("stopping (Ctrl-C again to abort)", file=sys.stderr)
        ):
            stats = live_loop(
                frames, swap, sink, stats, stop, settings.seconds, on_start, on_status
            )
    finally:
        if hasattr(swap, "close"):
            swap.close()  # the GPU path's mark workers
    if settings.stats is not None:
        write_stats(settings.stats, stats)
    return stats
