"""`slimswap ui`: a Gradio page over the same pipeline functions as the command line.

The page only collects inputs and shows results: every swap goes through
`pipeline.swap_image` / `pipeline.swap_video`, so outputs carry the same provenance label and
watermark as the CLI's. Handlers turn UserError (and anything unexpected) into a readable
message in the page (gr.Error); stack traces go to the server log only. Served on 127.0.0.1
unless asked otherwise: a face-swapping tool should not be reachable from the network by
accident.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import gradio as gr
import numpy as np

from slimswap import media
from slimswap.errors import UserError
from slimswap.options import BLENDS, MASKS, SwapOptions
from slimswap.pipeline import swap_image, swap_video
from slimswap.provenance import verify_file
from slimswap.ui.common import (
    Engine,
    default_mode,  # noqa: F401 (what the page runs, for its tests)
    mode_choice,
    page_message,
    readable_errors,
    ui_modes,
)
from slimswap.ui.live_tab import build_live_tab

SELECTOR_HELP = "one: the largest face · many: every face · reference: the face you click below"


# ------------------------------------------------------------------ pure helpers


def read_frame(path: str | Path, index: int = 0) -> np.ndarray:
    """The image itself, or frame `index` of a video (decoded up to it)."""
    if not media.is_video(path):
        return media.read_image(path)
    seen = 0
    last = None
    for batch in media.read_frames(path, 16):
        if seen + len(batch) > index:
            return batch[index - seen]
        seen += len(batch)
        last = batch[-1]
    if last is None:
        raise UserError(f"video has no frames: {path}")
    return last


def face_thumbnails(
    frame: np.ndarray, boxes: list[np.ndarray], size: int = 112
) -> list[tuple[np.ndarray, str]]:
    thumbs = []
    for i, box in enumerate(boxes):
        crop = _crop_around(frame, box, margin=0.25)
        thumbs.append(
            (cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA), f"face {i + 1}")
        )
    return thumbs


def _crop_around(frame: np.ndarray, box: np.ndarray, margin: float) -> np.ndarray:
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    h, w = frame.shape[:2]
    l, t = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    r, b = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
    return frame[t:b, l:r]


def reference_picture(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The picked face with context, upscaled so the detector finds it again: the pipeline's
    `reference` selector wants a picture of the person, and this is one."""
    crop = _crop_around(frame, box, margin=0.8)
    scale = max(1.0, 300 / max(1, min(crop.shape[:2])))
    if scale > 1:
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(crop)


def output_path(folder: Path, source: Path, target: Path) -> Path:
    if media.is_video(target):
        suffix = (
            target.suffix.lower() if target.suffix.lower() in (".mp4", ".mov", ".m4v") else ".mkv"
        )
    else:
        suffix = target.suffix.lower()
    return folder / f"{source.stem}_swapped_into_{target.stem}{suffix}"


def _paths(files) -> list[Path]:
    if not files:
        return []
    files = files if isinstance(files, list) else [files]
    return [Path(getattr(f, "name", f)) for f in files]


# ------------------------------------------------------------------ the page


def build_app(engine: Engine) -> gr.Blocks:
    modes = ui_modes()

    def _options(selector, masks, blend, color, label, state) -> SwapOptions:
        reference = None
        if selector == "reference":
            if not state or state.get("picked") is None:
                raise UserError(
                    "face selector 'reference': click the face to replace under 'Faces in the target'"
                )
            frame = read_frame(state["target"], state["frame"])
            reference = reference_picture(frame, np.array(state["boxes"][state["picked"]]))
        options = SwapOptions(
            face_selector=selector,
            reference=reference,
            masks=tuple(masks or ()),
            blend=blend,
            color_correction=bool(color),
            label=bool(label),
        )
        options.check()
        return options

    def _inputs(sources, target) -> tuple[list[Path], Path]:
        source_paths = _paths(sources)
        if not source_paths:
            raise UserError("upload at least one source image (the face to put in)")
        target_paths = _paths(target)
        if not target_paths:
            raise UserError("upload a target image or video (the picture to change)")
        return source_paths, target_paths[0]

    @readable_errors
    def on_target(target):
        paths = _paths(target)
        if not paths:
            return (
                None,
                [],
                gr.update(visible=False, value=0),
                None,
                "Upload a target image or video.",
            )
        path = paths[0]
        is_video = media.is_video(path)
        frames = media.probe_video(path).frame_count if is_video else 1
        preview, faces, state, note = _faces_at(path, 0)
        slider = gr.update(visible=is_video, maximum=max(1, frames - 1), value=0)
        return preview, faces, slider, state, note

    @readable_errors
    def on_frame(target, frame_index):
        paths = _paths(target)
        if not paths or not media.is_video(paths[0]):
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return _faces_at(paths[0], int(frame_index))

    def _faces_at(path: Path, index: int):
        frame = read_frame(path, index)
        boxes = [b for b, _ in engine.analyser.detect_boxes(frame)]
        boxes.sort(key=lambda b: -float((b[2] - b[0]) * (b[3] - b[1])))  # largest first, like "one"
        state = {
            "target": str(path),
            "frame": index,
            "boxes": [b.tolist() for b in boxes],
            "picked": None,
        }
        if boxes:
            note = f"{len(boxes)} face(s) found in the target; face 1 is the largest."
        else:
            note = "No face found in this target frame; try another frame or image."
        return frame, face_thumbnails(frame, boxes), state, note

    def on_pick(state, evt: gr.SelectData):
        if not state or not state.get("boxes"):
            return state, gr.skip(), "No faces to pick from."
        state = dict(state, picked=int(evt.index))
        return (
            state,
            gr.update(value="reference"),
            f"Reference: face {evt.index + 1} will be replaced.",
        )

    @readable_errors
    def on_preview(sources, target, state, selector, mode, masks, blend, color, label, frame_index):
        source_paths, target_path = _inputs(sources, target)
        folder = engine.request_dir()
        options = _options(selector, masks, blend, color, label, state)
        if media.is_video(target_path):  # the chosen frame, swapped as an image
            still = read_frame(target_path, int(frame_index))
            named = target_path.with_name(f"{target_path.stem}_frame{int(frame_index)}.png")
        else:
            still = named = target_path
        out = output_path(folder, source_paths[0], named)
        out = out.with_name("preview_" + out.name)
        report = swap_image(
            source_paths[0], still, out, engine.swapper(mode), options, engine.analyser
        )
        status = (
            f"Preview of frame {int(frame_index)}: " if media.is_video(target_path) else "Preview: "
        ) + (
            f"swapped {report.faces_swapped} face(s) with {report.swapper} in {report.seconds:.2f} s."
        )
        return gr.update(value=str(out), visible=True), status

    @readable_errors
    def on_swap(
        sources,
        target,
        state,
        runs,
        selector,
        mode,
        masks,
        blend,
        color,
        label,
        progress=gr.Progress(),  # noqa: B008 (Gradio's way: it injects the page's progress bar)
    ):
        runs = int(runs or 0) + 1
        source_paths, target_path = _inputs(sources, target)
        folder = engine.request_dir()
        options = _options(selector, masks, blend, color, label, state)
        swapper = engine.swapper(mode)
        outputs: list[Path] = []
        lines = []
        start = time.perf_counter()
        for n, source in enumerate(source_paths):
            out = output_path(folder, source, target_path)
            if media.is_video(target_path):
                prefix = f"source {n + 1}/{len(source_paths)}: " if len(source_paths) > 1 else ""

                def frames_done(done: int, total: int, desc: str = f"{prefix}frames") -> None:
                    progress((done, total), desc=desc, unit="frames")

                frames_done(0, media.probe_video(target_path).frame_count)
                report = swap_video(
                    source, target_path, out, swapper, options, engine.analyser, frames_done
                )
                lines.append(
                    f"{source.name}: swapped {report.frames_swapped}/{report.frames} frames with {report.swapper} "
                    f"in {report.seconds:.1f} s ({report.fps:.1f} fps)."
                )
            else:
                progress((n, len(source_paths)), desc="images")
                report = swap_image(source, target_path, out, swapper, options, engine.analyser)
                lines.append(
                    f"{source.name}: swapped {report.faces_swapped} face(s) with {report.swapper} in {report.seconds:.2f} s."
                )
            outputs.append(out)
        first = outputs[0]
        if len(lines) > 1:
            lines.append(f"{len(outputs)} results in {time.perf_counter() - start:.1f} s.")
        lines[0] = f"**Run {runs}** · {lines[0]}"
        lines.append(
            "Every result is labelled as synthetic (C2PA credentials + metadata + invisible watermark)."
        )
        image = None if media.is_video(first) else str(first)
        video = str(first) if media.is_video(first) else None
        return (
            gr.update(value=image, visible=image is not None),
            gr.update(value=video, visible=video is not None),
            [str(p) for p in outputs],
            "\n\n".join(lines),
            runs,
        )

    @readable_errors
    def on_verify(file):
        paths = _paths(file)
        if not paths:
            raise UserError("upload an image or video to check")
        return page_message("\n".join(verify_file(paths[0]).lines()))

    # uploads and results in Gradio's cache are deleted after a day (checked hourly)
    with gr.Blocks(title="slimswap", delete_cache=(3600, 86400)) as demo:
        gr.Markdown(
            "# slimswap\nSwap a face into a photo or video, on this computer. "
            "Every result is labelled as synthetic: C2PA content credentials, a metadata tag and an invisible watermark "
            "(check any file in the *Verify* tab or with `slimswap verify FILE`)."
        )
        state = gr.State(None)
        runs = gr.State(
            0
        )  # swaps done in this page, so a repeated identical result still reads as new
        with gr.Tab("Swap"):  # noqa: SIM117 (the nesting mirrors the page layout)
            with gr.Row():
                with gr.Column(scale=1):
                    sources = gr.File(
                        label="Source face image(s)",
                        file_count="multiple",
                        file_types=["image"],
                        elem_id="sources",
                    )
                    target = gr.File(
                        label="Target image or video",
                        file_types=["image", "video"],
                        elem_id="target",
                    )
                    target_view = gr.Image(
                        label="Target", interactive=False, height=260, elem_id="target-view"
                    )
                    frame_index = gr.Slider(
                        0,
                        1,
                        value=0,
                        step=1,
                        label="Video frame (for the faces below and the preview)",
                        visible=False,
                        elem_id="frame-index",
                    )
                    faces = gr.Gallery(
                        label="Faces in the target (click one to replace only that person)",
                        columns=6,
                        height=150,
                        allow_preview=False,
                        fit_columns=False,
                        object_fit="contain",
                        elem_id="target-faces",
                    )
                    with gr.Row():
                        selector = gr.Radio(
                            ["one", "many", "reference"],
                            value="one",
                            label="Faces to swap",
                            info=SELECTOR_HELP,
                            elem_id="selector",
                        )
                        mode = mode_choice(modes, engine.device, live=False, elem_id="mode")
                    with gr.Accordion("Mask and blend", open=False):
                        masks = gr.CheckboxGroup(
                            list(MASKS),
                            value=["box", "area"],
                            label="Mask",
                            info="box: soft square · area: face outline",
                        )
                        blend = gr.Radio(
                            list(BLENDS),
                            value="feather",
                            label="Blend",
                            info="feather: soft edge · poisson: seamless clone",
                        )
                        color = gr.Checkbox(
                            True, label="Colour correction (match the target's skin tone)"
                        )
                        label = gr.Checkbox(
                            True, label="Metadata label (the invisible watermark is always added)"
                        )
                    with gr.Row():
                        preview_btn = gr.Button("Preview one frame", elem_id="preview-btn")
                        swap_btn = gr.Button("Swap", variant="primary", elem_id="swap-btn")
                with gr.Column(scale=1):
                    status = gr.Markdown("Upload a source face and a target.", elem_id="status")
                    result_image = gr.Image(
                        label="Result", type="filepath", interactive=False, elem_id="result-image"
                    )
                    result_video = gr.Video(
                        label="Result video",
                        interactive=False,
                        visible=False,
                        elem_id="result-video",
                    )
                    downloads = gr.File(
                        label="Download",
                        file_count="multiple",
                        interactive=False,
                        elem_id="downloads",
                    )
        build_live_tab(engine, modes)
        with gr.Tab("Verify"):
            verify_in = gr.File(
                label="Image or video to check",
                file_types=["image", "video"],
                elem_id="verify-file",
            )
            verify_btn = gr.Button("Check for the slimswap label", elem_id="verify-btn")
            verify_out = gr.Textbox(
                label="Report", lines=5, interactive=False, elem_id="verify-report"
            )

        settings = [selector, mode, masks, blend, color, label]
        target.change(on_target, [target], [target_view, faces, frame_index, state, status])
        frame_index.release(on_frame, [target, frame_index], [target_view, faces, state, status])
        faces.select(on_pick, [state], [state, selector, status])
        preview_btn.click(
            on_preview, [sources, target, state, *settings, frame_index], [result_image, status]
        )
        swap_btn.click(
            on_swap,
            [sources, target, state, runs, *settings],
            [result_image, result_video, downloads, status, runs],
        )
        verify_btn.click(on_verify, [verify_in], [verify_out])
    return demo


def launch(
    host: str = "127.0.0.1",
    port: int = 7860,
    device: str = "cpu",
    on_start: Callable[[str], None] | None = None,
) -> None:
    """Build, warm (models loaded before the first click) and serve the app until Ctrl-C.

    Never shared: no public link is made (share=False, whatever GRADIO_SHARE says), and
    Gradio's own start-up text, which offers one, is off (quiet); `on_start(url)` is told
    where the page is served once it listens, for the caller to say so.
    """
    engine = Engine(device=device)
    engine.warm()
    demo = build_app(engine)
    theme = gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )
    _, url, _ = demo.queue(default_concurrency_limit=1).launch(
        server_name=host,
        server_port=port,
        share=False,
        allowed_paths=[str(engine.workdir)],
        show_error=False,
        theme=theme,
        footer_links=[],
        quiet=True,
        inbrowser=False,
        prevent_thread_lock=True,
    )
    if on_start is not None:
        on_start(url)
    demo.block_thread()
