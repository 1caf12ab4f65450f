"""`slimswap swap`: one source face into one image or video."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from slimswap.cli.common import console, fail, options_from, progress_bar
from slimswap.errors import UserError
from slimswap.options import JobSettings


@options_from(JobSettings)
def swap(
    source: Path = typer.Option(
        ..., "--source", "-s", help="Image of the face to put in (one person, frontal is best)."
    ),
    target: Path = typer.Option(
        ..., "--target", "-t", help="Image (jpg/png/webp) or video (mp4/mov/mkv/webm) to change."
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Where to write the result (same kind as the target)."
    ),
    settings: JobSettings | None = None,
) -> None:
    """Swap the face from SOURCE into TARGET and write OUTPUT."""
    from slimswap.face.analyser import FaceAnalyser
    from slimswap.pipeline import swap_file
    from slimswap.swap.registry import load_swapper

    try:
        settings.check()
        chosen = load_swapper(settings.mode, settings.device)
        # the MediaPipe nets follow --device (torch on CUDA); dlib runs on the CPU only
        analyser = FaceAnalyser(
            upsample=settings.upsample,
            detector=settings.detector,
            device=settings.device if settings.detector == "mediapipe" else "cpu",
        )
        with progress_bar(sys.stderr.isatty()) as on_progress:
            report = swap_file(
                source,
                target,
                output,
                chosen,
                settings.options(),
                analyser,
                on_progress=on_progress,
            )
    except UserError as err:
        fail(str(err))
    stages = ", ".join(
        f"{k} {v:.2f}s" for k, v in sorted(report.stage_seconds.items(), key=lambda kv: -kv[1])
    )
    if report.kind == "video":
        console.print(
            f"swapped {report.frames_swapped}/{report.frames} frames ({report.frames_without_face} without a face, "
            f"passed through) with {report.swapper} in {report.seconds:.1f}s ({report.fps:.1f} fps); {stages}"
        )
    else:
        console.print(
            f"swapped {report.faces_swapped} face(s) with {report.swapper} in {report.seconds:.2f}s; {stages}"
        )
    print(report.output)
