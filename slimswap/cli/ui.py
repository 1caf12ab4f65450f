"""`slimswap ui`: the web UI (Gradio)."""

from __future__ import annotations

import typer

from slimswap.cli.common import fail
from slimswap.errors import UserError


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
        launch(host=host, port=port, device=device)
    except UserError as err:
        fail(str(err))
