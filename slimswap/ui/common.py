"""What the web UI's tabs share: the Engine (analyser, swappers, working folder), the model
choice (with what `auto` means here, from the registry) and the way handlers report errors
in the page."""

from __future__ import annotations

import atexit
import functools
import logging
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

import gradio as gr

from slimswap import media
from slimswap.errors import UserError
from slimswap.face.analyser import FaceAnalyser
from slimswap.paths import EXAMPLES_DIR
from slimswap.swap.registry import auto_choice, available_modes, load_swapper, resolve_mode

log = logging.getLogger(__name__)

MODE_ORDER = ("auto", "quality", "lite", "classic")
MODE_HELP = {
    "quality": "quality: the large model (best likeness, slowest)",
    "lite": "lite: the compressed model (fast on a CPU)",
    "classic": "classic: landmark warp, no learned weights",
}


def ui_modes() -> list[str]:
    """`auto` and the modes whose model files are installed (classic always is)."""
    have = set(available_modes()) | {"auto", "classic"}
    return [m for m in MODE_ORDER if m in have]


def default_mode() -> str:
    """What `--mode auto` picks on a CPU: the learned model the evaluation cleared, else classic."""
    return resolve_mode("auto", "cpu")


def mode_choice(modes: list[str], device: str, live: bool, elem_id: str) -> gr.Radio:
    """The model choice of a tab, `auto` first and chosen, its note saying what `auto` runs
    on this machine and why (registry.auto_choice; `live`: the live loop's choice)."""
    choice = auto_choice(device, live)
    notes = {**MODE_HELP, "auto": f"auto: {choice.mode} on this machine ({choice.reason})"}
    return gr.Radio(
        modes, value="auto", label="Mode", info=" · ".join(notes[m] for m in modes), elem_id=elem_id
    )


class Engine:
    """What every request shares: one FaceAnalyser (its models load once), swappers by mode,
    and a working folder for outputs. Requests run one at a time (the queue's concurrency
    limit), so nothing here needs to be thread-safe beyond the swapper cache."""

    def __init__(self, device: str = "cpu", workdir: Path | None = None) -> None:
        self.device = device
        self.analyser = FaceAnalyser()
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="slimswap-ui-"))
        atexit.register(
            shutil.rmtree, self.workdir, ignore_errors=True
        )  # results were served from Gradio's cache
        self._swappers: dict[str, object] = {}
        self._lock = threading.Lock()

    def swapper(self, mode: str):
        mode = resolve_mode(mode, self.device)
        with self._lock:
            if mode not in self._swappers:
                self._swappers[mode] = load_swapper(mode, self.device)
            return self._swappers[mode]

    def warm(self) -> None:
        """Load the dlib models and the default swapper before the first click."""
        image = media.read_image(EXAMPLES_DIR / "grace_hopper.jpg")
        faces = self.analyser.detect(image)
        if faces:
            self.analyser.embed(image, faces[0])
        self.swapper("auto")

    def request_dir(self) -> Path:
        path = self.workdir / f"{time.time_ns()}"
        path.mkdir(parents=True)
        return path


def readable_errors(handler):
    """UserError -> its message in the page; anything else -> a short message, traceback in the log."""

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except gr.Error:
            raise
        except UserError as err:
            raise gr.Error(page_message(str(err)), title="Cannot swap") from None
        except Exception as err:
            log.exception("UI handler %s failed", handler.__name__)
            raise gr.Error(
                f"Something went wrong ({type(err).__name__}: {err}). The details are in the server log.",
                title="Error",
            ) from None

    return wrapper


def page_message(message: str) -> str:
    """A CLI message reworded for the page: upload paths shown by file name, CLI-only advice out."""
    message = re.sub(r"(?:/[^/\s]+)*/[0-9a-f]{32,}/", "", message)  # Gradio's upload cache folders
    return message.replace(
        "; try --upsample 1 for small faces", "; faces under ~80 px or turned away are not found"
    )
