"""`slimswap ui` as it starts: one line saying where it listens, and no offer to share.

Gradio's own start-up text ends with "To create a public link, set `share=True`": wrong advice
for a tool that keeps faces on this machine. No browser is needed here.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_start_up_says_where_it_listens_and_offers_no_public_link(tmp_path):
    pytest.importorskip("gradio", reason="gradio is not installed: pip install -e '.[ui]'")
    port = _free_port()
    log = tmp_path / "ui.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "slimswap.cli", "ui", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.time() + 120
            while "listening on" not in log.read_text():
                assert proc.poll() is None and time.time() < deadline, log.read_text()
                time.sleep(0.25)
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).close()
        finally:
            proc.terminate()
            proc.wait(30)
    text = log.read_text()
    assert (
        f"slimswap UI listening on http://127.0.0.1:{port} (local only; nothing is shared)" in text
    )
    assert "share=True" not in text and "public link" not in text.lower(), text


def test_both_tabs_offer_auto_and_say_what_it_runs_here(tmp_path):
    gr = pytest.importorskip("gradio", reason="gradio is not installed: pip install -e '.[ui]'")
    from slimswap.swap.registry import auto_choice
    from slimswap.ui.app import Engine, build_app

    demo = build_app(Engine(workdir=tmp_path / "ui"))
    radios = {b.elem_id: b for b in demo.blocks.values() if isinstance(b, gr.Radio)}
    for elem_id, live in (("mode", False), ("live-mode", True)):
        radio, choice = radios[elem_id], auto_choice("cpu", live)
        assert radio.value == "auto" and "auto" in [value for _, value in radio.choices]
        assert f"auto: {choice.mode} on this machine ({choice.reason})" in radio.info
