"""The `slimswap` command: one module per command group, each thin (parse, call the library,
report). The console script `slimswap = "slimswap.cli:app"` and `python -m slimswap.cli`
both run `app`.

    common.py    console, the error contract (UserError -> one line, exit 2), options
                 declared on dataclasses (with their renamed spellings), progress bar
    swap.py      swap            batch.py     batch, job list/retry      live.py   live
    detect.py    detect          models.py    models                     verify.py verify
    ui.py        ui              bench.py     bench
    data.py      data build      train.py     train teacher/recognizer
    compress.py  compress ...    evaluate.py  eval swapper/robustness/temporal/watermark

The library never imports this package.
"""

from __future__ import annotations

import typer

from slimswap import __version__
from slimswap.cli import (
    batch,
    bench,
    compress,
    data,
    detect,
    evaluate,
    live,
    models,
    swap,
    train,
    ui,
    verify,
)

app = typer.Typer(
    help="slimswap: swap faces in images and videos, locally, with a small fast model.\n\n"
    "Example:  slimswap swap -s me.jpg -t clip.mp4 -o out.mp4",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"slimswap {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """slimswap command line."""


for command in (
    swap.swap,
    detect.detect,
    models.models,
    bench.bench,
    verify.verify,
    batch.batch,
    live.live,
    ui.ui,
):
    app.command()(command)
app.command("bench-video")(bench.bench_video)
app.add_typer(data.app, name="data")
app.add_typer(compress.app, name="compress")
app.add_typer(train.app, name="train")
app.add_typer(evaluate.app, name="eval")
app.add_typer(batch.job_app, name="job")
