"""`slimswap detect`: the faces of one image as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from slimswap.cli.common import fail
from slimswap.errors import UserError


def detect(
    image: Path = typer.Argument(..., help="Image to analyse."),
    draw: Path | None = typer.Option(
        None, "--draw", help="Also write a copy with boxes and landmarks drawn."
    ),
    embeddings: bool = typer.Option(
        False, "--embeddings", help="Include the 128-D identity descriptors."
    ),
    upsample: int = typer.Option(0, "--upsample", help="Detector upsampling for small faces."),
    detector: str = typer.Option(
        "mediapipe", "--detector", help="Face analysis: mediapipe (default) or dlib."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace the --draw file if it exists."
    ),
) -> None:
    """Find faces in IMAGE and print them as JSON (box, score, 5 keypoints, 68 landmarks)."""
    from slimswap import media
    from slimswap.face.analyser import FaceAnalyser

    try:
        if draw is not None:
            media.check_not_same(image, draw)
            media.check_output_path(draw, overwrite)
        frame = media.read_image(image)
        analyser = FaceAnalyser(upsample=upsample, detector=detector)
        faces = analyser.detect_image(frame)  # down to ~24 px faces (tiles) by default
        if embeddings:
            faces = [analyser.embed(frame, f) for f in faces]
        if draw is not None:
            from slimswap.face.draw import draw_faces

            media.write_image(draw, draw_faces(frame, faces))
    except UserError as err:
        fail(str(err))
    print(json.dumps({"image": str(image), "faces": [f.to_json() for f in faces]}, indent=1))
