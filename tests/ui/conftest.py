"""What the browser tests share: Playwright with Debian's Chromium, and `slimswap ui`
running in a subprocess.

One server serves every browser test of the session (starting it loads dlib and the
default model, ~10 s on 2 cores). Needs `scripts/install_browser.sh` (apt chromium + pip
playwright); the tests skip with the reason without them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# as python.md says for this machine: no GPU, no sandbox (root), no background connections
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """tests/ui/artifacts/ (git-ignored; SLIMSWAP_UI_ARTIFACTS overrides): screenshots,
    the server log and measured timings."""
    path = Path(os.environ.get("SLIMSWAP_UI_ARTIFACTS", Path(__file__).parent / "artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def playwright():
    """A running Playwright (sync API), or a skip saying what to install."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed: run scripts/install_browser.sh"
    )
    pytest.importorskip("gradio", reason="gradio is not installed: pip install -e '.[ui]'")
    if not CHROMIUM.is_file():
        pytest.skip(
            f"Debian's Chromium is not installed ({CHROMIUM}): run scripts/install_browser.sh"
        )
    with sync_api.sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def launch_chromium(playwright):
    """launch_chromium(*extra_args) -> a headless Chromium Browser (close it when done)."""

    def launch(*extra_args: str):
        return playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra_args], headless=True
        )

    return launch


@pytest.fixture(scope="session")
def server(playwright, artifacts):
    """`slimswap ui` in a subprocess, as a user starts it; its log lands in the artefacts."""
    from helpers import ui_server

    with ui_server(artifacts / "ui_server.log") as url:
        yield url
