"""Helpers shared by test modules (tests/ is on pytest's pythonpath: `from helpers import ...`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_cli(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """`slimswap ARGS...` in a fresh interpreter, as a user would run it; output captured."""
    return subprocess.run(
        [sys.executable, "-m", "slimswap.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def bundled_face_frames(clip_step: int):
    """The bundled photos (Grace Hopper, the astronaut) and every `clip_step`-th frame of the
    bundled clip: real faces of three people that need no ../shared data."""
    from slimswap import media
    from slimswap.paths import EXAMPLES_DIR

    frames = [
        media.read_image(EXAMPLES_DIR / "grace_hopper.jpg"),
        media.read_image(EXAMPLES_DIR / "astronaut.png"),
    ]
    clip = [f for batch in media.read_frames(EXAMPLES_DIR / "clip.mp4", 8) for f in batch]
    return frames + clip[::clip_step]
