"""The `slimswap` command as a user runs it: real files, real exit codes, no tracebacks."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import run_cli

from slimswap import media
from slimswap.paths import EXAMPLES_DIR

FACE = EXAMPLES_DIR / "grace_hopper.jpg"
OTHER_FACE = EXAMPLES_DIR / "astronaut.png"
CLIP = EXAMPLES_DIR / "clip.mp4"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_user_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    """Exit code 2, one line on stderr naming the problem, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    text = " ".join(lines)
    assert "Traceback" not in proc.stderr
    assert text.startswith("error:"), proc.stderr
    assert fragment.lower() in text.lower(), proc.stderr


def test_version_prints_package_version():
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip().startswith("slimswap 0.")


def test_swap_help_explains_every_option():
    proc = run_cli("swap", "--help")
    assert proc.returncode == 0
    for option in (
        "--source",
        "--target",
        "--output",
        "--face-selector",
        "--reference",
        "--mask",
        "--blend",
        "--device",
        "--overwrite",
        "--mode",
    ):
        assert option in proc.stdout


def test_models_says_what_auto_picks_here_and_why():
    """`slimswap models` prints the registry's own answer for swap and for live."""
    from slimswap.swap.registry import auto_choice

    proc = run_cli("models")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for choice in (auto_choice("cpu"), auto_choice("cpu", live=True)):
        assert choice.line() in lines


def test_renamed_swapper_option_still_swaps_with_a_one_line_note(tmp_path):
    """`--swapper X` (the old spelling, which scripts used) works as `--mode X` for one
    release and says so in one line on stderr; the help shows only the new spelling."""
    out = tmp_path / "swap.png"
    proc = run_cli("swap", "-s", FACE, "-t", OTHER_FACE, "-o", out, "--swapper", "classic")
    assert proc.returncode == 0, proc.stderr
    notes = [ln for ln in proc.stderr.splitlines() if "--swapper" in ln]
    assert len(notes) == 1 and "--mode classic" in notes[0], proc.stderr
    assert "with classic" in proc.stderr and out.is_file()
    assert "--swapper" not in run_cli("swap", "--help").stdout


@pytest.mark.parametrize(
    "command", [["batch", "-t", OTHER_FACE], ["live", "--input", CLIP, "--output", "file"]]
)
def test_renamed_swapper_option_reaches_batch_and_live(tmp_path, command):
    out = ["-o", tmp_path / "out"] if command[0] == "batch" else ["--out", tmp_path / "o.mp4"]
    proc = run_cli(*command, "-s", FACE, *out, "--swapper", "no-such-mode")
    note, error = proc.stderr.strip().splitlines()
    assert "--swapper no-such-mode is now spelled --mode no-such-mode" in note
    assert proc.returncode == 2 and error.startswith("error: unknown mode 'no-such-mode'")


def test_detect_prints_one_face_json_and_draws(tmp_path):
    drawn = tmp_path / "drawn.png"
    proc = run_cli("detect", FACE, "--draw", drawn)
    assert proc.returncode == 0, proc.stderr
    import json

    faces = json.loads(proc.stdout)["faces"]
    assert len(faces) == 1
    assert len(faces[0]["landmarks"]) == 68 and len(faces[0]["kps"]) == 5
    assert media.read_image(drawn).shape == media.read_image(FACE).shape


def test_image_swap_classic_writes_labelled_png(tmp_path):
    out = tmp_path / "swap.png"
    before = digest(OTHER_FACE), digest(FACE)
    proc = run_cli("swap", "-s", FACE, "-t", OTHER_FACE, "-o", out, "--mode", "classic")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    result = media.read_image(out)
    original = media.read_image(OTHER_FACE)
    assert result.shape == original.shape
    from slimswap.face.analyser import FaceAnalyser, embedding_distance

    fa = FaceAnalyser()
    emb = lambda img: fa.embed(img, fa.detect(img)[0]).embedding
    source = emb(media.read_image(FACE))
    assert embedding_distance(emb(result), source) < embedding_distance(emb(original), source)
    assert media.read_image_metadata(out).get("slimswap:synthetic") == "true"
    assert (digest(OTHER_FACE), digest(FACE)) == before  # inputs untouched


def test_video_swap_keeps_frames_fps_duration_audio(tmp_path):
    out = tmp_path / "swap.mp4"
    proc = run_cli("swap", "-s", FACE, "-t", CLIP, "-o", out, "--mode", "classic")
    assert proc.returncode == 0, proc.stderr
    src, dst = media.probe_video(CLIP), media.probe_video(out)
    assert dst.frame_count == src.frame_count
    assert dst.fps == src.fps
    assert abs(dst.duration_s - src.duration_s) <= 1 / float(src.fps)
    assert dst.has_audio and dst.audio_codec == src.audio_codec
    assert "120/120 frames" in proc.stderr


# ------------------------------------------------------------------ bad input -> exit 2, no output


@pytest.fixture
def text_as_mp4(tmp_path) -> Path:
    p = tmp_path / "not_a_video.mp4"
    p.write_text("this is not a video\n")
    return p


@pytest.fixture
def truncated_jpg(tmp_path) -> Path:
    p = tmp_path / "truncated.jpg"
    p.write_bytes(FACE.read_bytes()[:3000])
    return p


@pytest.fixture
def no_face_png(tmp_path) -> Path:
    p = tmp_path / "wall.png"
    rng = np.random.default_rng(0)
    media.write_image(p, (rng.random((240, 320, 3)) * 40 + 100).astype(np.uint8))
    return p


@pytest.fixture
def gifx_image(tmp_path) -> Path:
    p = tmp_path / "face.gifx"
    p.write_bytes(FACE.read_bytes())
    return p


@pytest.mark.parametrize(
    "source, target, output, fragment",
    [
        ("no_face_png", OTHER_FACE, "o.png", "no face found in source"),
        (FACE, "no_face_png", "o.png", "no face found in target"),
        ("truncated_jpg", OTHER_FACE, "o.png", "truncated.jpg"),
        (FACE, "text_as_mp4", "o.mp4", "not_a_video.mp4"),
        ("gifx_image", OTHER_FACE, "o.png", "gifx"),
        (FACE, OTHER_FACE, "no/such/o.png", "folder"),
    ],
    ids=[
        "source_without_face",
        "target_image_without_face",
        "truncated_image",
        "text_file_named_mp4",
        "unsupported_format",
        "missing_output_folder",
    ],
)
def test_bad_input_is_one_line_and_leaves_no_output(
    request, tmp_path, source, target, output, fragment
):
    """A file named by its fixture is made for the case (a faceless picture, a cut JPEG...)."""
    files = [request.getfixturevalue(f) if isinstance(f, str) else f for f in (source, target)]
    out = tmp_path / output
    proc = run_cli("swap", "-s", files[0], "-t", files[1], "-o", out, "--mode", "classic")
    assert_user_error(proc, fragment)
    assert not out.exists()


def test_existing_output_needs_overwrite(tmp_path):
    out = tmp_path / "o.png"
    out.write_bytes(b"keep me")
    assert_user_error(
        run_cli("swap", "-s", FACE, "-t", OTHER_FACE, "-o", out, "--mode", "classic"), "--overwrite"
    )
    assert out.read_bytes() == b"keep me"


def test_unwritable_output_path(tmp_path):
    out = Path("/proc/slimswap_out.png")
    assert_user_error(
        run_cli("swap", "-s", FACE, "-t", OTHER_FACE, "-o", out, "--mode", "classic"), "writ"
    )
    assert not out.exists()


def test_output_same_as_target_is_refused(tmp_path):
    target = tmp_path / "t.png"
    target.write_bytes(OTHER_FACE.read_bytes())
    before = digest(target)
    assert_user_error(
        run_cli("swap", "-s", FACE, "-t", target, "-o", target, "--overwrite", "--mode", "classic"),
        "",
    )
    assert digest(target) == before


def test_missing_model_is_a_clear_error(tmp_path, monkeypatch):
    out = tmp_path / "o.png"
    proc = run_cli("swap", "-s", FACE, "-t", OTHER_FACE, "-o", out, "--mode", "nonsense")
    assert_user_error(proc, "mode")
    assert not out.exists()


def test_video_frames_without_face_pass_through(tmp_path):
    """A clip whose second half has no face: those frames are copied and counted."""
    src = tmp_path / "half.mp4"
    info = media.probe_video(CLIP)
    frames = [f for batch in media.read_frames(CLIP, 16) for f in batch]
    blank = np.full_like(frames[0], 128)
    mixed = frames[:30] + [blank] * 30
    import dataclasses

    with media.VideoWriter(
        src, dataclasses.replace(info, frame_count=60, duration_s=2.0), CLIP
    ) as w:
        w.write(mixed)
    out = tmp_path / "o.mp4"
    proc = run_cli("swap", "-s", FACE, "-t", src, "-o", out, "--mode", "classic")
    assert proc.returncode == 0, proc.stderr
    assert "30 without a face" in proc.stderr
    assert media.probe_video(out).frame_count == 60


@pytest.mark.shared
def test_talking_head_video_keeps_frames_and_audio(shared_data, tmp_path):
    video = shared_data / "videos" / "liveportrait_driving_d12.mp4"
    out = tmp_path / "d12.mp4"
    proc = run_cli("swap", "-s", FACE, "-t", video, "-o", out, "--mode", "classic")
    assert proc.returncode == 0, proc.stderr
    src, dst = media.probe_video(video), media.probe_video(out)
    assert dst.frame_count == src.frame_count and dst.fps == src.fps
    assert abs(dst.duration_s - src.duration_s) <= 1 / float(src.fps)
    assert dst.has_audio == src.has_audio
    with av.open(str(video)) as a, av.open(str(out)) as b:
        if src.has_audio:
            pa = [bytes(p) for p in a.demux(audio=0) if p.size]
            pb = [bytes(p) for p in b.demux(audio=0) if p.size]
            assert pa == pb  # audio copied unchanged
