"""Media I/O on the bundled examples (fast) and on a LivePortrait clip from ../shared (marked)."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from slimswap import media
from slimswap.errors import UserError
from slimswap.media import (
    VideoWriter,
    check_not_same,
    check_output_path,
    is_video,
    probe_video,
    read_frames,
    read_image,
    read_image_metadata,
    write_image,
)
from slimswap.paths import EXAMPLES_DIR

CLIP = EXAMPLES_DIR / "clip.mp4"
ASTRONAUT = EXAMPLES_DIR / "astronaut.png"
HOPPER = EXAMPLES_DIR / "grace_hopper.jpg"
LABEL = {"slimswap:synthetic": "true", "slimswap:model": "classic · v1"}


def assert_one_line_user_error(excinfo: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(excinfo.value)
    assert excinfo.type is UserError
    assert message and "\n" not in message and "Traceback" not in message
    for fragment in fragments:
        assert fragment in message, message


def all_frames(path: Path) -> list[np.ndarray]:
    return [f for batch in read_frames(path, 32) for f in batch]


def audio_summary(path: Path) -> tuple[str, list[bytes], int]:
    """Codec, raw packet payloads and decoded sample count of the first audio stream."""
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        codec = stream.codec_context.name
        packets = [bytes(p) for p in c.demux(stream) if p.size]
    with av.open(str(path)) as c:
        samples = sum(f.samples for f in c.decode(audio=0))
    return codec, packets, samples


# ----------------------------------------------------------------------------- images


def test_bundled_examples_are_small_and_decodable():
    total = sum(p.stat().st_size for p in EXAMPLES_DIR.iterdir() if p.is_file())
    assert total < 5 * 1024 * 1024
    assert read_image(ASTRONAUT).shape == (512, 512, 3)
    assert read_image(HOPPER).shape == (600, 512, 3)


def test_png_round_trip_is_lossless_and_keeps_metadata(tmp_path):
    rgb = read_image(ASTRONAUT)
    out = tmp_path / "out.png"
    write_image(out, rgb, metadata=LABEL)
    back = read_image(out)
    assert back.dtype == np.uint8 and np.array_equal(back, rgb)
    assert read_image_metadata(out) == LABEL
    assert os.listdir(tmp_path) == ["out.png"]


@pytest.mark.parametrize("ext", [".jpg", ".webp"])
def test_lossy_round_trip_keeps_colour_and_metadata(tmp_path, ext):
    rgb = read_image(HOPPER)
    out = tmp_path / f"out{ext}"
    write_image(out, rgb, metadata=LABEL)
    back = read_image(out)
    assert back.shape == rgb.shape
    diff = back.astype(np.int16) - rgb
    assert np.abs(diff).mean() < 3.0
    # a swapped R/B channel order would move the channel means by tens of levels
    assert np.abs(diff.reshape(-1, 3).mean(0)).max() < 1.0
    assert read_image_metadata(out) == LABEL


def test_read_image_is_rgb_not_bgr():
    rgb = read_image(ASTRONAUT)
    suit = rgb[300:400, 50:120].reshape(-1, 3).mean(0)  # the orange space suit
    assert suit[0] > suit[2] + 60


def _bad_image(kind: str, tmp_path: Path) -> Path:
    data = HOPPER.read_bytes()
    if kind == "missing":
        return tmp_path / "nothing.jpg"
    if kind == "extension":
        path = tmp_path / "face.gif"
        path.write_bytes(data)
        return path
    path = tmp_path / f"{kind}.jpg"
    if kind == "text":
        path.write_text("this is not an image\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "corrupt_header":
        path.write_bytes(b"\x00" * 64 + data[64:])
    return path


@pytest.mark.parametrize(
    "kind, fragment",
    [
        ("missing", "not found"),
        ("extension", "unsupported image type .gif"),
        ("text", "cannot decode"),
        ("empty", "cannot decode"),
        ("truncated", "cannot decode"),
        ("corrupt_header", "cannot decode"),
    ],
)
def test_read_image_rejects_bad_files_with_one_line(tmp_path, kind, fragment):
    path = _bad_image(kind, tmp_path)
    with pytest.raises(UserError) as excinfo:
        read_image(path)
    assert_one_line_user_error(excinfo, fragment, path.name)


def test_write_image_failure_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    out = tmp_path / "out.png"
    out.write_bytes(b"previous result")

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(media.os, "replace", failing_replace)
    with pytest.raises(UserError) as excinfo:
        write_image(out, read_image(ASTRONAUT))
    assert_one_line_user_error(excinfo, "No space left")
    assert out.read_bytes() == b"previous result"
    assert os.listdir(tmp_path) == ["out.png"]


# ----------------------------------------------------------------------------- video probing


def test_is_video_by_extension():
    assert is_video("a/b.MP4") and is_video("x.mkv") and is_video("x.webm")
    assert not is_video("x.jpg") and not is_video("mp4")


def test_probe_bundled_clip():
    info = probe_video(CLIP)
    assert (info.width, info.height) == (512, 512)
    assert info.fps == Fraction(30) and info.frame_count == 120
    assert info.duration_s == pytest.approx(4.0, abs=1 / 30)
    assert info.has_audio and info.audio_codec == "aac"
    assert info.rotation == 0 and info.video_codec == "h264"
    assert "LivePortrait" in info.tags.get("comment", "")


def test_read_frames_batches_every_frame():
    batches = list(read_frames(CLIP, 16))
    assert [len(b) for b in batches] == [16] * 7 + [8]
    frame = batches[0][0]
    assert frame.shape == (512, 512, 3) and frame.dtype == np.uint8


def _audio_only_mp4(tmp_path: Path) -> Path:
    path = tmp_path / "sound.mp4"
    with av.open(str(CLIP)) as src, av.open(str(path), "w") as out:
        stream = out.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(src.streams.audio[0]):
            if packet.size:
                packet.stream = stream
                out.mux(packet)
    return path


@pytest.mark.parametrize("kind", ["missing", "text", "garbage", "truncated", "audio_only"])
def test_probe_and_read_reject_non_videos_with_one_line(tmp_path, kind):
    path = tmp_path / f"{kind}.mp4"
    if kind == "text":
        path.write_text("not a video at all\n")
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, np.uint8).tobytes())
    elif kind == "truncated":
        path.write_bytes(CLIP.read_bytes()[:1000])  # cuts into the moov header
    elif kind == "audio_only":
        path = _audio_only_mp4(tmp_path)
    with pytest.raises(UserError) as excinfo:
        probe_video(path)
    assert_one_line_user_error(excinfo, path.name)
    with pytest.raises(UserError) as excinfo:
        next(read_frames(path, 4))
    assert_one_line_user_error(excinfo, path.name)


# ----------------------------------------------------------------------------- video writing


def write_copy(src: Path, out: Path, info=None, metadata=None, batch_size: int = 32) -> None:
    info = info or probe_video(src)
    with VideoWriter(out, info, source_path=src, metadata=metadata) as writer:
        for batch in read_frames(src, batch_size):
            writer.write(batch)


def assert_faithful_copy(src: Path, out: Path, sample_slack: int = 0) -> None:
    a, b = probe_video(src), probe_video(out)
    assert b.frame_count == a.frame_count
    assert b.fps == a.fps
    assert abs(b.duration_s - a.duration_s) <= 1 / float(a.fps) + 1e-6
    assert (b.width, b.height, b.rotation) == (a.width, a.height, a.rotation)
    assert b.has_audio and b.audio_codec == a.audio_codec
    codec_a, packets_a, samples_a = audio_summary(src)
    codec_b, packets_b, samples_b = audio_summary(out)
    assert codec_b == codec_a
    assert packets_b == packets_a  # copied bit for bit, not re-encoded
    assert 0 <= samples_b - samples_a <= sample_slack


# MP4 marks the AAC encoder's priming samples with an edit list; Matroska has no such mark
# here, so the same packets decode to one extra AAC frame (1024 samples) of near-silence at
# the start. The video start is shifted by the same amount, so sync is kept.
@pytest.mark.parametrize("ext, sample_slack", [(".mp4", 0), (".mkv", 1024)])
def test_video_round_trip_keeps_frames_audio_and_metadata(tmp_path, ext, sample_slack):
    out = tmp_path / f"swapped{ext}"
    write_copy(CLIP, out, metadata=LABEL)
    assert os.listdir(tmp_path) == [out.name]
    assert_faithful_copy(CLIP, out, sample_slack)
    tags = {k.lower(): v for k, v in probe_video(out).tags.items()}
    assert {k.lower(): v for k, v in LABEL.items()}.items() <= tags.items()

    src_frames, out_frames = all_frames(CLIP), all_frames(out)
    assert len(out_frames) == len(src_frames) == 120
    for i in (0, 60, 119):
        diff = out_frames[i].astype(np.int16) - src_frames[i]
        assert np.abs(diff).mean() < 2.0  # crf 18: close to the source
        assert np.abs(diff.reshape(-1, 3).mean(0)).max() < 0.5  # no colour/brightness shift


def test_video_writer_exception_leaves_nothing_behind(tmp_path):
    out = tmp_path / "out.mp4"
    info = probe_video(CLIP)
    with (
        pytest.raises(RuntimeError, match="swapper crashed"),
        VideoWriter(out, info, source_path=CLIP) as writer,
    ):
        writer.write(next(read_frames(CLIP, 8)))
        raise RuntimeError("swapper crashed")
    assert os.listdir(tmp_path) == []


def test_video_writer_failure_keeps_existing_output(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous result")
    info = probe_video(CLIP)
    with (
        pytest.raises(ValueError, match="expected uint8"),
        VideoWriter(out, info, source_path=CLIP) as writer,
    ):
        writer.write([np.zeros((10, 10, 3), np.uint8)])  # wrong size
    assert out.read_bytes() == b"previous result"
    assert os.listdir(tmp_path) == ["out.mp4"]


def test_video_writer_without_frames_writes_nothing(tmp_path):
    out = tmp_path / "out.mp4"
    with (
        pytest.raises(ValueError, match="without any frames"),
        VideoWriter(out, probe_video(CLIP), source_path=CLIP),
    ):
        pass
    assert os.listdir(tmp_path) == []


def test_odd_sizes_are_cropped_to_even(tmp_path):
    frames = [f[:201, :151] for f in next(read_frames(CLIP, 5))]
    info = replace(probe_video(CLIP), width=151, height=201, has_audio=False)
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, info, source_path=None) as writer:
        assert (writer.width, writer.height) == (150, 200)
        writer.write(frames)
    back = probe_video(out)
    assert (back.width, back.height, back.frame_count, back.has_audio) == (150, 200, 5, False)
    decoded = all_frames(out)
    assert np.abs(decoded[0].astype(np.int16) - frames[0][:200, :150]).mean() < 3.0


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_is_written_and_read_back(tmp_path, rotation):
    src = tmp_path / "rotated.mp4"
    info = replace(probe_video(CLIP), rotation=rotation)
    with VideoWriter(src, info, source_path=CLIP) as writer:
        writer.write(next(read_frames(CLIP, 6)))
    assert probe_video(src).rotation == rotation
    # and a copy of a rotated video keeps it
    out = tmp_path / "copy.mp4"
    write_copy(src, out)
    assert probe_video(out).rotation == rotation


def _tiny_video_with_pcm_audio(path: Path) -> None:
    """64x64, 10 frames, stereo PCM audio: a codec MP4 cannot hold but Matroska can."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        audio = out.add_stream("pcm_s16le", rate=8000, layout="stereo")
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 25 * i, np.uint8), "rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 10)
            out.mux(video.encode(frame))
            sound = av.AudioFrame.from_ndarray(np.zeros((1, 1600), np.int16), "s16", "stereo")
            sound.sample_rate, sound.pts, sound.time_base = 8000, 800 * i, Fraction(1, 8000)
            out.mux(audio.encode(sound))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))


def test_audio_the_container_cannot_hold_is_a_user_error(tmp_path):
    src = tmp_path / "pcm.mkv"
    _tiny_video_with_pcm_audio(src)
    info = probe_video(src)
    assert info.audio_codec == "pcm_s16le" and info.frame_count == 10
    with pytest.raises(UserError) as excinfo:
        write_copy(src, tmp_path / "out.mp4")
    assert_one_line_user_error(excinfo, "try .mkv")
    assert sorted(os.listdir(tmp_path)) == ["pcm.mkv"]
    write_copy(src, tmp_path / "out.mkv")
    assert_faithful_copy(src, tmp_path / "out.mkv")


@pytest.mark.shared
def test_shared_video_round_trip(tmp_path, shared_data):
    src = shared_data / "videos" / "liveportrait_driving_d12.mp4"  # 25 fps, 183 frames
    if not src.is_file():
        pytest.skip(f"{src} absent from the shared data")
    out = tmp_path / "d12.mp4"
    write_copy(src, out, batch_size=16)
    assert_faithful_copy(src, out)
    assert os.listdir(tmp_path) == [out.name]


# ----------------------------------------------------------------------------- output paths


def test_check_output_path_accepts_new_and_overwritable_files(tmp_path):
    assert check_output_path(tmp_path / "new.mp4", inputs=[CLIP]) == tmp_path / "new.mp4"
    existing = tmp_path / "old.png"
    existing.write_bytes(b"x")
    assert check_output_path(existing, overwrite=True, kind="image") == existing
    assert os.listdir(tmp_path) == ["old.png"]  # the writability probe cleaned up


def test_check_output_path_refuses_bad_targets(tmp_path):
    existing = tmp_path / "old.mp4"
    existing.write_bytes(b"x")
    cases = [
        ({"path": tmp_path / "missing" / "out.mp4"}, "output folder does not exist"),
        ({"path": existing}, "output exists"),
        ({"path": tmp_path / "out.gif"}, "cannot write .gif"),
        ({"path": tmp_path / "out"}, "without an extension"),
        ({"path": tmp_path / "out.webm"}, "cannot write .webm"),
        ({"path": tmp_path / "out.png", "kind": "video"}, "cannot write .png"),
        ({"path": existing, "overwrite": True, "inputs": [existing]}, "is the input file"),
        ({"path": Path("/proc/slimswap-out.png")}, "not writable"),
    ]
    for kwargs, fragment in cases:
        with pytest.raises(UserError) as excinfo:
            check_output_path(**kwargs)
        assert_one_line_user_error(excinfo, fragment)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_check_output_path_refuses_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(UserError) as excinfo:
            check_output_path(folder / "out.mp4")
        assert_one_line_user_error(excinfo, "not writable")
    finally:
        folder.chmod(0o755)


def test_check_not_same_sees_through_other_spellings(tmp_path, monkeypatch):
    src = tmp_path / "in.mp4"
    shutil.copyfile(CLIP, src)
    link = tmp_path / "link.mp4"
    link.symlink_to(src)
    monkeypatch.chdir(tmp_path)
    for spelling in ("in.mp4", "./in.mp4", str(link), f"../{tmp_path.name}/in.mp4"):
        with pytest.raises(UserError):
            check_not_same(src, spelling)
    check_not_same(src, tmp_path / "other.mp4")
