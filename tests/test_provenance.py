"""Provenance: every output carries the metadata label and the invisible watermark; the
watermark survives JPEG q80 and H.264 re-encoding; unswapped real faces never read as marked."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from slimswap import media
from slimswap.face.analyser import FaceAnalyser
from slimswap.paths import EXAMPLES_DIR
from slimswap.pipeline import SwapOptions, swap_file
from slimswap.provenance import (
    MAX_BIT_ERRORS,
    N_BITS,
    embed_watermark,
    read_watermark,
    verify_file,
)
from slimswap.swap.registry import load_swapper

HOPPER = EXAMPLES_DIR / "grace_hopper.jpg"
ASTRONAUT = EXAMPLES_DIR / "astronaut.png"
CLIP = EXAMPLES_DIR / "clip.mp4"


def run_cli(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "slimswap.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def jpeg_bytes(rgb: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)  # no EXIF: the label is gone
    return buf.getvalue()


def reencode_h264(src: Path, dst: Path, crf: int) -> None:
    """What a re-upload does: decode, re-encode with libx264 at `crf`, drop all tags."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = inp.streams.video[0]
        video = out.add_stream(
            "libx264", rate=stream.average_rate, options={"crf": str(crf), "preset": "medium"}
        )
        video.width, video.height, video.pix_fmt = stream.width, stream.height, "yuv420p"
        for frame in inp.decode(stream):
            frame.pts = None
            out.mux(video.encode(frame.reformat(format="yuv420p")))
        out.mux(video.encode(None))


@pytest.fixture(scope="module")
def swapped_png(tmp_path_factory, analyser: FaceAnalyser) -> Path:
    out = tmp_path_factory.mktemp("prov") / "swap.png"
    swap_file(
        HOPPER, ASTRONAUT, out, load_swapper("classic"), SwapOptions(), analyser
    )
    return out


def test_swapped_image_carries_label_and_watermark(swapped_png):
    report = verify_file(swapped_png)
    assert report.label_present
    assert report.label["slimswap:model"] == "classic"
    assert report.label["Software"].startswith("slimswap ")
    assert report.watermark_present and report.bit_errors == [0]


def test_watermark_survives_jpeg_q80_reencode(swapped_png, tmp_path):
    reencoded = tmp_path / "reupload.jpg"
    reencoded.write_bytes(jpeg_bytes(media.read_image(swapped_png), 80))
    report = verify_file(reencoded)
    assert not report.label_present  # the metadata did not survive ...
    assert report.watermark_present  # ... the pixels did
    assert report.bit_errors[0] <= MAX_BIT_ERRORS // 2


def test_original_inputs_are_not_marked():
    for path in (HOPPER, ASTRONAUT):
        report = verify_file(path)
        assert not report.label_present and not report.watermark_present, path
    clip = verify_file(CLIP)
    assert clip.frames_checked == 12 and clip.frames_marked == 0


def test_watermark_is_invisible_and_leaves_colour_alone():
    rgb = media.read_image(ASTRONAUT)
    marked = embed_watermark(rgb)
    diff = marked.astype(np.int16) - rgb
    psnr = 10 * np.log10(255**2 / np.mean(diff.astype(np.float64) ** 2))
    assert psnr > 42, psnr
    assert np.abs(diff).max() <= 6
    # luma only: the three channels move together wherever nothing clipped
    inside = (rgb > 8).all(-1) & (rgb < 247).all(-1)
    assert (diff[..., 0] == diff[..., 1])[inside].all() and (diff[..., 1] == diff[..., 2])[
        inside
    ].all()
    assert read_watermark(marked).bit_errors == 0


def test_odd_sizes_tiny_and_flat_images():
    rgb = media.read_image(ASTRONAUT)
    odd = embed_watermark(rgb[:333, :515])
    assert read_watermark(odd[:-1, :-1]).detected  # the video writer crops odd sizes by one pixel
    tiny = read_watermark(embed_watermark(rgb[:40, :40]))
    assert not tiny.readable and not tiny.detected
    flat = read_watermark(np.full((256, 256, 3), 128, np.uint8))
    assert flat.readable and not flat.detected


@pytest.mark.slow
def test_watermark_survives_h264_reencode_of_swapped_video(tmp_path, analyser):
    short = tmp_path / "short.mp4"  # 30 frames of the bundled clip keep the test quick
    info = media.probe_video(CLIP)
    with media.VideoWriter(short, info, source_path=None) as writer:
        writer.write(next(media.read_frames(CLIP, 30)))
    swapped = tmp_path / "swapped.mp4"
    report = swap_file(
        HOPPER, short, swapped, load_swapper("classic"), SwapOptions(), analyser
    )
    assert report.frames == 30 and report.frames_swapped > 20
    assert verify_file(swapped).label_present
    reencoded = tmp_path / "reencoded.mp4"
    reencode_h264(swapped, reencoded, crf=23)
    after = verify_file(reencoded, frames=10)
    assert not after.label_present
    assert after.frames_checked == 10
    assert after.watermark_present and after.watermark_share == 1.0, after.bit_errors


def test_label_opt_out_keeps_the_watermark(tmp_path, analyser):
    out = tmp_path / "nolabel.jpg"
    swap_file(
        HOPPER,
        ASTRONAUT,
        out,
        load_swapper("classic"),
        SwapOptions(label=False),
        analyser,
    )
    report = verify_file(out)
    assert report.label == {} and not report.label_present
    assert report.watermark_present


@pytest.mark.shared
def test_no_false_positives_on_200_real_unswapped_faces(shared_data):
    files = sorted((shared_data / "lfw_deepfunneled").glob("*/*.jpg"))[:200]
    assert len(files) == 200
    errors = np.array([read_watermark(media.read_image(f)).bit_errors for f in files])
    detected = int((errors <= MAX_BIT_ERRORS).sum())
    assert detected == 0, f"false positives: {detected}/200"
    # unmarked images decode to ~binomial(64, 1/2) errors: the threshold sits far below them
    assert errors.min() > MAX_BIT_ERRORS + 4 and abs(errors.mean() - N_BITS / 2) < 2


def test_verify_cli_reports_and_exit_codes(swapped_png, tmp_path):
    proc = run_cli("verify", swapped_png)
    assert proc.returncode == 0, proc.stderr
    assert "metadata label: present" in proc.stdout and "watermark: present" in proc.stdout
    proc = run_cli("verify", ASTRONAUT)
    assert proc.returncode == 0, proc.stderr
    assert "metadata label: absent" in proc.stdout and "watermark: absent" in proc.stdout
    assert "no slimswap label found" in proc.stdout
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    proc = run_cli("verify", broken)
    assert (
        proc.returncode == 2 and proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
    )
    proc = run_cli("verify", tmp_path / "missing.mp4")
    assert proc.returncode == 2 and "not found" in proc.stderr
