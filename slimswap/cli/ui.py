"""`slimswap ui`: the web UI (Gradio), served on this machine only unless asked otherwise."""

from __future__ import annotations

import typer

from slimswap.cli.common import console, fail
from slimswap.errors import UserError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def listening_line(url: str, host: str) -> str:
    """The one line `slimswap ui` prints once it serves (Gradio's own start-up text is off)."""
    url = url.rstrip("/")
    if host in LOOPBACK or host.startswith("127."):
        return f"slimswap UI listening on {url} (local only; nothing is shared)"
    return f"slimswap UI listening on {url} (open to the network on {host}; no public link)"


def ui(
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Interface to serve on; the default keeps it on this machine."
    ),
    port: int = typer.Option(7860, "--port", help="TCP port."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
) -> None:
    """Open the web UI (Gradio) at http://HOST:PORT."""
    try:
        if device not in ("cpu", "cuda"):
            raise UserError(f"--device must be cpu or cuda, got {device!r}")
        try:
            from slimswap.ui.app import launch
        except ModuleNotFoundError as err:
            if err.name != "gradio":
                raise
            raise UserError(
                "the web UI needs gradio: pip install 'slimswap[ui]' (or pip install 'gradio>=6,<7')"
            ) from None

        def started(url: str) -> None:
            console.print(listening_line(url, host), highlight=False, soft_wrap=True)

        launch(host=host, port=port, device=device, on_start=started)
    except UserError as err:
        fail(str(err))
