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

    frames.py   one frame: ScaledDetection, FrameSwapper, the live swapper
    sources.py  cameras, streams, files replayed in real time; the capture thread
    sinks.py    window, file, v4l2 virtual camera
    loop.py     live_loop, LiveStats/LiveMeter, run_live (`slimswap live`)
"""

from slimswap.live.frames import MIN_IOU, FrameSwapper, ScaledDetection, frame_swapper, live_swapper
from slimswap.live.loop import (
    FIRST_FRAME_TIMEOUT_S,
    LiveMeter,
    LiveStats,
    live_loop,
    run_live,
    stop_on_sigint,
    write_stats,
)
from slimswap.live.sinks import (
    LIVE_X264_PRESET,
    NO_V4L2,
    FileSink,
    FrameSink,
    V4l2Sink,
    WindowSink,
    check_output,
    draw_status,
    find_loopback_device,
    gui_available,
    open_sink,
    v4l2_output_format,
)
from slimswap.live.sources import (
    DEFAULT_FPS,
    Capture,
    CapturedFrame,
    CaptureSource,
    FileSource,
    FrameSource,
    LatestFrame,
    is_recording_url,
    open_source,
)

__all__ = [
    "DEFAULT_FPS",
    "FIRST_FRAME_TIMEOUT_S",
    "LIVE_X264_PRESET",
    "MIN_IOU",
    "NO_V4L2",
    "Capture",
    "CaptureSource",
    "CapturedFrame",
    "FileSink",
    "FileSource",
    "FrameSink",
    "FrameSource",
    "FrameSwapper",
    "LatestFrame",
    "LiveMeter",
    "LiveStats",
    "ScaledDetection",
    "V4l2Sink",
    "WindowSink",
    "check_output",
    "draw_status",
    "find_loopback_device",
    "frame_swapper",
    "gui_available",
    "is_recording_url",
    "live_loop",
    "live_swapper",
    "open_sink",
    "open_source",
    "run_live",
    "stop_on_sigint",
    "v4l2_output_format",
    "write_stats",
]
