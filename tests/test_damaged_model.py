"""A damaged model file is one clear line everywhere a user meets it, never a traceback.

The registry reads a copy of models/ (SLIMSWAP_MODELS) whose lite file has one flipped byte:
`slimswap swap`, `slimswap batch` and `slimswap ui` exit 2 with one line; the web UI's swap
shows the message in the page; a queued job fails with it as its reason.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers import run_cli

from slimswap.errors import UserError
from slimswap.jobs import JOBS_DIRNAME, JobQueue, enqueue, plan_batch, run_queue
from slimswap.options import JobSettings
from slimswap.paths import EXAMPLES_DIR, MODELS_DIR
from slimswap.swap.registry import pick_entry

SOURCE = EXAMPLES_DIR / "grace_hopper.jpg"
TARGET = EXAMPLES_DIR / "astronaut.png"


@pytest.fixture
def damaged_models(tmp_path, monkeypatch) -> Path:
    """A copy of models/ whose lite file (the one a CPU runs) has one byte flipped.

    The other files are linked, not copied: the face-analysis nets must be there for the
    commands to reach the swap model at all. The lite entries are marked `auto`, so the UI's
    default mode (which it loads before serving) is the damaged model.
    """
    folder = tmp_path / "models"
    folder.mkdir()
    manifest = json.loads((MODELS_DIR / "MANIFEST").read_text())
    for e in manifest["models"]:
        if e["mode"] == "lite":
            e["auto"] = True
    (folder / "MANIFEST").write_text(json.dumps(manifest))
    entry = pick_entry("lite", "cpu")
    for path in MODELS_DIR.iterdir():
        if path.is_file() and path.name not in ("MANIFEST", entry.file):
            (folder / path.name).symlink_to(path)
    data = bytearray(entry.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / entry.file).write_bytes(bytes(data))
    monkeypatch.setenv("SLIMSWAP_MODELS", str(folder))
    return folder / entry.file


def assert_one_line_exit_2(proc: subprocess.CompletedProcess, damaged: Path) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    text = " ".join(proc.stderr.split())  # rich wraps long lines at the terminal width
    assert text.startswith("error: model file") and "corrupted" in text and damaged.name in text
    assert text.count("error:") == 1


def test_swap_command(damaged_models, tmp_path):
    out = tmp_path / "out.png"
    proc = run_cli("swap", "-s", SOURCE, "-t", TARGET, "-o", out, "--mode", "lite")
    assert_one_line_exit_2(proc, damaged_models)
    assert not out.exists()


def test_batch_command_stops_before_any_job(damaged_models, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("batch", "-s", SOURCE, "-t", TARGET, "-o", out, "--mode", "lite")
    assert_one_line_exit_2(proc, damaged_models)
    assert JobQueue(out / JOBS_DIRNAME).jobs() == []


def test_ui_command_refuses_to_start(damaged_models):
    assert_one_line_exit_2(run_cli("ui", "--port", "0", timeout=120), damaged_models)


def test_job_fails_with_the_reason(damaged_models, tmp_path, analyser):
    queue = JobQueue(tmp_path / "out" / JOBS_DIRNAME)
    enqueue(
        queue,
        plan_batch(
            [str(SOURCE)],
            [str(TARGET)],
            tmp_path / "out",
            "{target}{ext}",
            JobSettings(mode="lite"),
        ),
    )
    summary = run_queue(queue, analyser=analyser)
    (job,) = queue.jobs()
    assert (summary.failed, job.status) == (1, "failed")
    assert (
        "corrupted" in job.reason and damaged_models.name in job.reason and "\n" not in job.reason
    )
    assert job.detail == ""  # a user's problem, not a bug: no traceback kept
    assert not (tmp_path / "out" / "astronaut.png").exists()


def test_web_ui_swap_shows_the_message(damaged_models, tmp_path):
    gr = pytest.importorskip("gradio", reason="gradio is not installed: pip install -e '.[ui]'")
    from slimswap.ui.app import Engine, build_app

    demo = build_app(Engine(workdir=tmp_path / "ui"))
    on_swap = next(f.fn for f in demo.fns.values() if f.name == "on_swap")
    with pytest.raises(gr.Error) as caught:
        on_swap(
            [str(SOURCE)],
            str(TARGET),
            None,
            0,
            "one",
            "lite",
            ["box", "area"],
            "feather",
            True,
            True,
            progress=lambda *a, **k: None,
        )
    message = caught.value.message
    assert "corrupted" in message and damaged_models.name in message and "\n" not in message
    assert caught.value.title == "Cannot swap"


def test_library_callers_get_a_user_error(damaged_models):
    from slimswap.swap.registry import load_swapper

    with pytest.raises(UserError, match="corrupted"):
        load_swapper("lite", "cpu")
