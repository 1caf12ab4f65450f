"""`slimswap ui` as it starts: one line saying where it listens, and no offer to share.

Gradio's own start-up text ends with "To create a public link, set `share=True`": wrong advice
for a tool that keeps faces on this machine. No browser is needed here.
"""

from __future__ import annotations

import time

import pytest
from helpers import ui_server

pytestmark = pytest.mark.slow


def test_start_up_says_where_it_listens_and_offers_no_public_link(tmp_path):
    pytest.importorskip("gradio", reason="gradio is not installed: pip install -e '.[ui]'")
    log = tmp_path / "ui.log"
    with ui_server(log, timeout=120) as url:
        deadline = time.time() + 30  # the line comes once Gradio has started serving
        while "listening on" not in log.read_text() and time.time() < deadline:
            time.sleep(0.1)
    text = log.read_text()
    assert f"slimswap UI listening on {url.rstrip('/')} (local only; nothing is shared)" in text
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
