"""What every command module shares: the stderr console, the error contract, options declared
on dataclasses, renamed options, the progress bar and the log set-up of long runs.

Every UserError becomes one line on stderr and exit code 2 (`fail`); anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import time
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

console = Console(stderr=True)


def fail(message: str) -> None:
    """One line on stderr, exit code 2: the contract for every user-fixable problem."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def renamed_note(old: str, new: str, value: object) -> str:
    """The one-line note for an option given by its former name."""
    return (
        f"deprecated: {old} {value} is now spelled {new} {value} ({old} goes in the next release)"
    )


def _renamed_option(old: str, new: str, annotation: object) -> inspect.Parameter:
    """A hidden option spelled `old` whose value goes to the option `new`, with a note."""

    def note(value):
        if value is not None:
            console.print(renamed_note(old, new, value), highlight=False, soft_wrap=True)
        return value

    return inspect.Parameter(
        f"renamed_{old.lstrip('-').replace('-', '_')}",
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(None, old, hidden=True, callback=note),
        annotation=annotation | None,
    )


def options_from(cls):
    """Give a command one option per command-line field of dataclass `cls` and call it with
    `settings=cls(...)`: the flags, help and defaults are declared once, on the dataclass
    (options.cli), and `swap`, `batch`, `live` and the job files all derive from it. A field's
    former spellings (`renamed`) stay accepted as hidden options that print a note."""
    hints = typing.get_type_hints(cls)
    own = set(cls.__annotations__)
    cli_fields = sorted(
        (f for f in dataclasses.fields(cls) if "cli" in f.metadata), key=lambda f: f.name not in own
    )

    def decorate(command):
        signature = inspect.signature(command)
        base = [p for p in signature.parameters.values() if p.name != "settings"]
        extra = []
        renamed = {}  # hidden parameter -> the field it sets
        for f in cli_fields:
            meta = f.metadata["cli"]
            default = meta["show"](f.default) if meta["show"] else f.default
            annotation = meta["cli_type"] or hints[f.name]
            extra.append(
                inspect.Parameter(
                    f.name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=typer.Option(default, *meta["flags"], help=meta["help"]),
                    annotation=annotation,
                )
            )
            for old in meta["renamed"]:
                extra.append(_renamed_option(old, meta["flags"][0], annotation))
                renamed[extra[-1].name] = f.name

        @functools.wraps(command)
        def wrapper(**kwargs):
            for param, name in renamed.items():
                value = kwargs.pop(param)
                if value is not None:
                    kwargs[name] = value
            values = {}
            for f in cli_fields:
                parse = f.metadata["cli"]["parse"]
                value = kwargs.pop(f.name)
                values[f.name] = parse(value) if parse else value
            return command(settings=cls(**values), **kwargs)

        wrapper.__signature__ = signature.replace(parameters=base + extra)
        wrapper.__annotations__ = {p.name: p.annotation for p in base + extra}
        return wrapper

    return decorate


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr, driven by the pipeline's on_progress(done, total)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("[bold]swapping"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]:.1f} fps"),
        TimeRemainingColumn(),
    ]
    start = time.perf_counter()
    with Progress(*columns, console=console, disable=not enabled, transient=False) as bar:
        task = bar.add_task("swap", total=None, fps=0.0)

        def update(done: int, total: int) -> None:
            fps = done / max(time.perf_counter() - start, 1e-9)
            bar.update(task, completed=done, total=total or None, fps=fps)

        yield update


def log_to_stderr() -> None:
    """Progress lines of long runs (data build, training) on stderr, with the time: the
    process's logging is the command's to set, never the library's."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")


def swappers_for(modes: list[str], device: str) -> list:
    """One swapper per mode; no --mode means classic plus every installed learned mode."""
    from slimswap.swap.registry import available_modes, load_swapper

    wanted = modes or ["classic", *available_modes()]
    return [load_swapper(m, device) for m in dict.fromkeys(wanted)]
