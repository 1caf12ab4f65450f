"""`slimswap models`: the installed swap models, and what `--mode auto` picks on this machine."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from slimswap.cli.common import fail
from slimswap.errors import UserError


def cuda_present() -> bool:
    """Whether this machine has a CUDA GPU torch can use (torch is imported only where an
    NVIDIA driver is loaded, so the listing stays fast on a CPU machine)."""
    if not Path("/proc/driver/nvidia/version").exists():
        return False
    import torch

    return torch.cuda.is_available()


def models() -> None:
    """List the installed swap models with size, parameters, MACs, resolution and hash, and
    what `--mode auto` runs on this machine (swap, batch, the UI; and live) and why."""
    from rich.table import Table

    from slimswap.swap.registry import auto_choice, read_manifest

    try:
        entries = read_manifest()
        devices = ["cpu", "cuda"] if cuda_present() else ["cpu"]
        autos = [auto_choice(d, live) for d in devices for live in (False, True)]
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
    out = Console()
    out.print(table)
    for choice in autos:
        out.print(choice.line(), highlight=False, soft_wrap=True)
