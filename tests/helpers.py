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
