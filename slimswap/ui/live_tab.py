"""The web UI's Live tab: the browser's webcam streamed to the server, swapped frame by frame
through the same frame path as `slimswap live`."""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path

import cv2
import gradio as gr
import numpy as np
from gradio.data_classes import Base64ImageData

from slimswap.errors import UserError
from slimswap.face.analyser import FaceAnalyser
from slimswap.live import FrameSwapper, frame_swapper, live_swapper
from slimswap.options import SwapOptions
from slimswap.ui.common import Engine, mode_choice, page_message, readable_errors

LIVE_STREAM_EVERY_S = 0.04  # the page sends a frame at most this often, and only once the
# previous one came back, so a slow server gets fewer frames instead of a growing queue
LIVE_DETECT_SCALE = 0.5  # as `slimswap live`: detect on a half-size copy (webcam faces are big)
LIVE_FPS_WINDOW = 20  # frames the shown fps is averaged over
LIVE_JPEG_QUALITY = 90  # swapped frames sent to the page (the watermark survives JPEG 50)


def inline_jpeg(value: np.ndarray | None) -> Base64ImageData | None:
    """An RGB frame as a JPEG data: URL, for gr.Image's page code to show as it is.

    gr.Image saves every value it shows as a file in Gradio's cache, which is emptied only of
    files older than a day: a live stream at 15 fps would leave over a gigabyte an hour there.
    """
    if value is None:
        return None
    bgr_frame = cv2.cvtColor(np.asarray(value), cv2.COLOR_RGB2BGR)
    ok, jpeg = cv2.imencode(".jpg", bgr_frame, [cv2.IMWRITE_JPEG_QUALITY, LIVE_JPEG_QUALITY])
    if not ok:
        raise ValueError(f"cannot encode a {bgr_frame.shape} frame as JPEG")
    return Base64ImageData(url="data:image/jpeg;base64," + base64.b64encode(jpeg).decode())


class LiveSession:
    """One page's live stream: the FrameSwapper for its source face and mode (tracks carry
    from frame to frame), and when its recent frames came in (the fps shown)."""

    def __init__(self, key: tuple[str, str], swap: FrameSwapper) -> None:
        self.key = key
        self.swap = swap
        self.arrivals: list[float] = []
        self.server_ms: list[float] = []

    def frame(self, rgb: np.ndarray) -> tuple[np.ndarray, str]:
        start = time.perf_counter()
        out, faces = self.swap(rgb)
        done = time.perf_counter()
        self.arrivals = (self.arrivals + [start])[-LIVE_FPS_WINDOW:]
        self.server_ms = (self.server_ms + [(done - start) * 1000])[-LIVE_FPS_WINDOW:]
        span = self.arrivals[-1] - self.arrivals[0]
        fps = (len(self.arrivals) - 1) / span if span > 0 else 0.0
        what = "face swapped" if faces else "no face found: frame shown as it came"
        return out, (
            f"**{fps:.1f} fps** · {float(np.median(self.server_ms)):.0f} ms a frame on the "
            f"server · {self.swap.swapper.name} · {what}"
        )


def build_live_tab(engine: Engine, modes: list[str]) -> None:
    """The Live tab: the browser's webcam streamed to the server, each frame swapped
    (slimswap.live.FrameSwapper, the same frame path as `slimswap live`) and sent back.

    Frames stream through Gradio's streaming image input (`.stream`), one at a time. Live
    streams have a queue of their own ("live"), so they do not block the Swap tab, an
    analyser of their own, so a stream and a swap never share dlib's models at once, and
    swappers of their own (ONNX Runtime on one thread, which suits one frame at a time).
    """
    analyser = FaceAnalyser()
    swappers: dict[str, object] = {}  # by mode: ONNX on one thread (see live.live_swapper)
    lock = threading.Lock()

    def swapper_for(mode: str):
        with lock:
            if mode not in swappers:
                swappers[mode] = live_swapper(mode, engine.device, torch_threads=False)
            return swappers[mode]

    @readable_errors
    def on_live_frame(frame, source, mode, session):
        if frame is None:
            return gr.skip(), gr.skip(), session
        if not source:
            return None, "Upload a source face (left) to start swapping.", None
        key = (str(source), str(mode))
        if session is None or session.key != key:
            try:
                swap = frame_swapper(
                    Path(source),
                    swapper_for(mode),
                    SwapOptions(),
                    analyser,
                    detect_scale=LIVE_DETECT_SCALE,
                )
            except UserError as err:
                return None, f"Cannot swap: {page_message(str(err))}", None
            session = LiveSession(key, swap)
        out, status = session.frame(np.ascontiguousarray(frame))
        return out, status, session

    with gr.Tab("Live"):
        gr.Markdown(
            "Your webcam, swapped live: upload a source face, allow the camera, press "
            "**Record**. Frames the server cannot keep up with are skipped. "
            "Every frame shown carries the invisible slimswap watermark."
        )
        with gr.Row():
            source = gr.Image(
                label="Source face",
                type="filepath",
                sources=["upload"],
                height=180,
                scale=1,
                elem_id="live-source",
            )
            with gr.Column(scale=2):
                mode = mode_choice(modes, engine.device, live=True, elem_id="live-mode")
                status = gr.Markdown("Not streaming.", elem_id="live-fps")
        with gr.Row(equal_height=True):
            camera = gr.Image(
                label="Webcam",
                sources=["webcam"],
                streaming=True,
                type="numpy",
                webcam_options=gr.WebcamOptions(mirror=False),
                height=420,
                elem_id="live-camera",
            )
            swapped = gr.Image(
                label="Swapped (synthetic)",
                interactive=False,
                height=420,
                elem_id="live-output",
            )
            # frames go inline, not through the cache (a gr.Image subclass would do it too,
            # but Gradio writes a .pyi stub beside the module of every Component subclass)
            swapped.postprocess = inline_jpeg
        session = gr.State(None)
        camera.stream(
            on_live_frame,
            [camera, source, mode, session],
            [swapped, status, session],
            stream_every=LIVE_STREAM_EVERY_S,
            concurrency_limit=1,
            concurrency_id="live",
            show_progress="hidden",
        )
