"""`slimswap verify`: a file's C2PA credentials, metadata label and invisible watermark."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from slimswap.cli.common import fail
from slimswap.errors import UserError


def verify(
    file: Path = typer.Argument(..., help="Image or video to check."),
    frames: int = typer.Option(
        12, "--frames", help="Video: how many evenly spaced frames to check."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Report FILE's C2PA credentials, slimswap metadata label and invisible watermark.

    Exit code 0 when any synthetic label is found, 1 when none is, 2 if FILE cannot be read.
    """
    from slimswap.provenance import verify_file

    try:
        if frames < 1:
            raise UserError("--frames must be at least 1")
        report = verify_file(file, frames=frames)
    except UserError as err:
        fail(str(err))
    print(json.dumps(report.to_json(), indent=1) if as_json else "\n".join(report.lines()))
    raise typer.Exit(0 if report.labelled else 1)
