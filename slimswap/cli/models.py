"""`slimswap models`: the installed swap models."""

from __future__ import annotations

from rich.console import Console

from slimswap.cli.common import fail
from slimswap.errors import UserError


def models() -> None:
    """List the installed swap models with size, parameters, MACs, resolution and hash."""
    from rich.table import Table

    from slimswap.swap.registry import read_manifest

    try:
        entries = read_manifest()
    except UserError as err:
        fail(str(err))
    table = Table(title="slimswap models")
    for col in (
        "name",
        "mode",
        "backend",
        "precision",
        "file",
        "MiB",
        "params",
        "MACs",
        "res",
        "sha256",
    ):
        table.add_column(col)
    table.add_row("classic", "classic", "numpy", "fp32", "-", "0", "0", "-", "256", "-")
    for e in entries:
        size = e.path.stat().st_size / 2**20 if e.path.is_file() else float("nan")
        table.add_row(
            e.name,
            e.mode,
            e.backend,
            e.precision,
            e.file,
            f"{size:.2f}",
            f"{e.params / 1e6:.2f}M",
            f"{e.macs / 1e9:.2f}G" if e.macs else "-",
            str(e.resolution),
            e.sha256[:12],
        )
    Console().print(table)
