"""`slimswap live`: a camera or stream, swapped as it comes."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from slimswap.cli.common import console, fail, options_from
from slimswap.errors import UserError
from slimswap.options import LiveSettings


@contextmanager
def _status_line(enabled: bool) -> Iterator[Callable[[str], None]]:
    """A one-line live status on stderr (fps, latency), updated in place; off when piped."""
    if not enabled:
        yield lambda line: None
        return
    with console.status("live: starting") as status:
        yield lambda line: status.update(f"live: {line}")


@options_from(LiveSettings)
def live(
    source: Path = typer.Option(
        ..., "--source", "-s", help="Image of the face to put in (one person, frontal is best)."
    ),
    settings: LiveSettings | None = None,
) -> None:
    """Swap the face from SOURCE into a camera or stream, live; Ctrl-C stops.

    Frames are swapped as they come; when swapping is slower than the source, frames are
    dropped instead of falling behind. Every frame carries the invisible watermark; a file
    output is labelled and C2PA-signed like any other.
    """
    from slimswap.live import run_live

    def started() -> None:
        console.print(
            f"live: swapping into {settings.input or f'camera {settings.camera or 0}'} -> "
            f"{settings.output}{f' {settings.out}' if settings.out else ''}; Ctrl-C to stop",
            highlight=False,
            soft_wrap=True,
        )

    try:
        with _status_line(sys.stderr.isatty()) as on_status:
            stats = run_live(source, settings, on_start=started, on_status=on_status)
    except UserError as err:
        fail(str(err))
    console.print(f"live: {stats.summary()}", highlight=False, soft_wrap=True)
    if settings.stats is not None:
        console.print(f"stats in {settings.stats}", highlight=False, soft_wrap=True)
    if settings.output == "file":
        print(settings.out)
