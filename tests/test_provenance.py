"""Provenance: every output carries a C2PA manifest (validated by c2pa-python itself), the
metadata label and the invisible marks; the face mark survives resizing, cropping and small
rotations; unswapped real faces never read as marked; `verify` exits 0 / 1 / 2."""

from __future__ import annotations

import io
import json
import math
import os
import stat
from pathlib import Path

import av
import c2pa
import cv2
import numpy as np
import pytest
from cryptography import x509
from helpers import run_cli
from PIL import Image

from slimswap import media
from slimswap.errors import UserError
from slimswap.evaluate.watermark import ATTACKS
from slimswap.evaluate.watermark import _h264 as reencode_frame
from slimswap.face.analyser import FaceAnalyser
from slimswap.paths import EXAMPLES_DIR
from slimswap.pipeline import SwapOptions, swap_file
from slimswap.provenance import (
    credentials,
    embed_watermark,
    face_mark,
    frame_mark,
    read_watermark,
    verify_file,
)
from slimswap.swap.registry import load_swapper

HOPPER = EXAMPLES_DIR / "grace_hopper.jpg"
ASTRONAUT = EXAMPLES_DIR / "astronaut.png"
CLIP = EXAMPLES_DIR / "clip.mp4"
COMPOSITE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"


def c2pa_store(path: Path) -> tuple[str, dict, dict]:
    """(validation state, active manifest, validation results) as c2pa-python reads them."""
    mime = credentials.MIME_TYPES[path.suffix.lower()]
    with open(path, "rb") as stream, c2pa.Reader(mime, stream) as reader:
        return (
            reader.get_validation_state(),
            reader.get_active_manifest(),
            reader.get_validation_results(),
        )


def assert_slimswap_manifest(path: Path, model: str) -> None:
    state, manifest, results = c2pa_store(path)
    assert state == "Valid", results  # signature and data hash check out; issuer not trusted
    failures = {f["code"] for f in results["activeManifest"].get("failure", [])}
    assert failures == {"signingCredential.untrusted"}  # the only complaint: self-signed
    successes = {s["code"] for s in results["activeManifest"]["success"]}
    assert {"claimSignature.validated"} <= successes
    assert successes & {"assertion.dataHash.match", "assertion.bmffHash.match"}
    actions = [
        a
        for assertion in manifest["assertions"]
        if assertion["label"].startswith("c2pa.actions")
        for a in assertion["data"]["actions"]
    ]
    created = actions[0]
    assert created["action"] == "c2pa.created"
    assert created["digitalSourceType"] == COMPOSITE
    assert created["softwareAgent"]["name"] == "slimswap"
    assert created["parameters"]["model"] == model
    assert manifest["claim_generator_info"][0]["name"] == "slimswap"
    assert manifest["signature_info"]["common_name"] == "slimswap local signer"


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
    swap_file(HOPPER, ASTRONAUT, out, load_swapper("classic"), SwapOptions(), analyser)
    return out


@pytest.fixture(scope="module")
def swapped_mp4(tmp_path_factory, analyser: FaceAnalyser) -> Path:
    folder = tmp_path_factory.mktemp("prov_video")
    short = folder / "short.mp4"  # 30 frames of the bundled clip keep the test quick
    info = media.probe_video(CLIP)
    with media.VideoWriter(short, info, source_path=None) as writer:
        writer.write(next(media.read_frames(CLIP, 30)))
    swapped = folder / "swapped.mp4"
    report = swap_file(HOPPER, short, swapped, load_swapper("classic"), SwapOptions(), analyser)
    assert report.frames == 30 and report.frames_swapped > 20
    return swapped


@pytest.fixture()
def signer(tmp_path) -> credentials.OutputSigner:
    cert, key = credentials.ensure_local_credentials(tmp_path / "c2pa")
    return credentials.OutputSigner(credentials.load_credentials(cert, key), "classic", "x")


# ------------------------------------------------------------------ C2PA


def test_swapped_image_carries_c2pa_label_and_watermarks(swapped_png, analyser):
    assert_slimswap_manifest(swapped_png, "classic")
    report = verify_file(swapped_png, analyser=analyser)
    assert report.c2pa.label_present and not report.c2pa.trusted
    assert report.c2pa.digital_source_types == [COMPOSITE]
    assert report.label_present and report.label["slimswap:model"] == "classic"
    (reading,) = report.readings
    # the face mark's moves stop at the JND on smooth skin (issue 24): 2 errors measured on
    # this lossless PNG, against 0 before; a face counts as marked up to 7
    assert reading.frame.bit_errors == 0 and [f.bit_errors <= 3 for f in reading.faces] == [True]
    assert report.labelled


def test_swapped_video_carries_c2pa_manifest(swapped_mp4, analyser):
    assert_slimswap_manifest(swapped_mp4, "classic")
    report = verify_file(swapped_mp4, frames=6, analyser=analyser)
    assert report.c2pa.label_present and report.label_present
    assert report.frames_checked == 6 and report.watermark_share == 1.0


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp"])
def test_every_image_format_is_signed_and_keeps_its_metadata(tmp_path, signer, suffix):
    rgb = media.read_image(HOPPER)
    out = tmp_path / f"out{suffix}"
    media.write_image(out, rgb, metadata={"slimswap:synthetic": "true"}, sign=signer.sign_bytes)
    assert_slimswap_manifest(out, "classic")
    assert media.read_image_metadata(out) == {"slimswap:synthetic": "true"}
    assert np.abs(media.read_image(out).astype(int) - rgb).max() <= (0 if suffix == ".png" else 40)


def test_edited_pixels_break_the_c2pa_signature(tmp_path, signer):
    out = tmp_path / "signed.png"
    media.write_image(out, media.read_image(ASTRONAUT), sign=signer.sign_bytes)
    data = bytearray(out.read_bytes())
    idat = data.index(b"IDAT") + 100
    data[idat] ^= 0xFF  # one byte of compressed pixels
    tampered = tmp_path / "tampered.png"
    tampered.write_bytes(bytes(data))
    report = credentials.read_c2pa(tampered)
    assert report.present and not report.valid and not report.label_present
    assert any("dataHash.mismatch" in code for code in report.failures), report.failures


def test_local_credentials_are_a_ca_chain_with_a_private_key(tmp_path):
    folder = tmp_path / "cfg" / "c2pa"
    cert, key = credentials.ensure_local_credentials(folder)
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert credentials.ensure_local_credentials(folder) == (cert, key)  # made once
    assert [p.name for p in folder.parent.iterdir()] == ["c2pa"]  # no staging folder left
    leaf, ca = x509.load_pem_x509_certificates(cert.read_bytes())
    assert leaf.issuer == ca.subject != leaf.subject  # C2PA refuses self-signed signers
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    ekus = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert credentials.DOCUMENT_SIGNING in ekus
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_default_credentials_live_in_the_config_dir_not_home(monkeypatch, tmp_path):
    monkeypatch.setenv("SLIMSWAP_CONFIG_DIR", str(tmp_path / "conf"))
    monkeypatch.delenv(credentials.ENV_CERT, raising=False)
    monkeypatch.delenv(credentials.ENV_KEY, raising=False)
    creds = credentials.load_credentials()
    assert (tmp_path / "conf" / "c2pa" / "signer.key").is_file()
    assert str(tmp_path) in creds.where


def test_credentials_from_env_and_bad_pairs(monkeypatch, tmp_path):
    cert, key = credentials.ensure_local_credentials(tmp_path / "a")
    _, other_key = credentials.ensure_local_credentials(tmp_path / "b")
    monkeypatch.setenv(credentials.ENV_CERT, str(cert))
    monkeypatch.setenv(credentials.ENV_KEY, str(key))
    assert credentials.load_credentials().where == f"{cert.resolve()} + {key.resolve()}"
    with pytest.raises(UserError, match="does not belong"):
        credentials.load_credentials(cert, other_key)
    with pytest.raises(UserError, match="go together"):
        credentials.load_credentials(cert, None)
    with pytest.raises(UserError, match="not found"):
        credentials.load_credentials(tmp_path / "nope.pem", key)
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(UserError, match="not a PEM"):
        credentials.load_credentials(tmp_path / "junk.pem", other_key)


def test_a_failed_signature_leaves_no_file(tmp_path):
    def broken(*_):
        raise UserError("signing failed")

    rgb = media.read_image(HOPPER)
    with pytest.raises(UserError):
        media.write_image(tmp_path / "out.jpg", rgb, sign=broken)
    info = media.probe_video(CLIP)
    with (
        pytest.raises(UserError),
        media.VideoWriter(tmp_path / "out.mp4", info, None, sign=broken) as writer,
    ):
        writer.write(next(media.read_frames(CLIP, 4)))
    assert list(tmp_path.iterdir()) == []  # no output, no temp file


# ------------------------------------------------------------------ watermarks


def test_marks_are_invisible_and_leave_colour_alone(analyser):
    rgb = media.read_image(ASTRONAUT)
    kps = analyser.detect(rgb)[0].kps
    marked = embed_watermark(rgb, [kps])
    diff = marked.astype(np.int16) - rgb
    psnr = 10 * np.log10(255**2 / np.mean(diff.astype(np.float64) ** 2))
    assert psnr >= 40, psnr
    inside = (rgb > 12).all(-1) & (rgb < 243).all(-1)  # luma only wherever nothing clipped
    assert (diff[..., 0] == diff[..., 1])[inside].all()
    assert (diff[..., 1] == diff[..., 2])[inside].all()
    reading = read_watermark(marked, analyser)
    # the face mark's moves stop at the JND on smooth skin (issue 24): a bit or two may stay
    # short of its lattice point even in a lossless copy (the rule allows 7)
    assert reading.frame.bit_errors == 0 and [f.bit_errors <= 2 for f in reading.faces] == [True]


@pytest.mark.parametrize("attack", ["resize_50", "crop_10", "rotate_2", "jpeg_q50"])
def test_face_mark_survives_what_the_frame_mark_does_not(analyser, attack):
    rgb = media.read_image(HOPPER)
    marked = embed_watermark(rgb, [analyser.detect(rgb)[0].kps])
    attacked = ATTACKS[attack](marked)
    reading = read_watermark(attacked, analyser)
    assert len(reading.faces) == 1
    assert reading.faces[0].detected, reading.faces[0]
    frame = frame_mark.read_frame_mark(attacked)
    if attack in ("crop_10", "rotate_2"):  # off the 8-pixel grid: the frame mark misses it
        assert not frame.detected
    elif attack == "resize_50":  # an exact halving: the grid is back at twice the size
        assert frame.detected and frame.rule == "v2@2x", frame


def frame_mark_v1(rgb: np.ndarray) -> np.ndarray:
    """The frame mark as written before issue 24 (full QIM moves on the fine lattice, no
    JND, plain rounding): a frozen copy, so that files marked then stay readable."""
    luma = frame_mark._usable_luma(rgb)
    h, w = luma.shape
    blocks = frame_mark._ll_blocks(luma)
    ny, nx = blocks.shape[:2]
    coef = frame_mark._coefficients(blocks)
    bit_index, dither = frame_mark._keyed(ny, nx)
    offset = dither + frame_mark.SIGNATURE[bit_index] * (frame_mark.DELTA / 2)
    d = frame_mark.DELTA
    change = (np.round((coef - offset) / d) * d + offset - coef).astype(np.float32)
    dct, rows, cols = frame_mark._DCT, frame_mark._ROWS, frame_mark._COLS
    ll = np.einsum("ri,yxr,rj->yixj", dct[rows], change, dct[cols]).reshape(ny * 4, nx * 4)
    pixel = np.rint(cv2.resize(ll, (w, h), interpolation=cv2.INTER_NEAREST) * 0.5)
    out = rgb.astype(np.int16)
    out[:h, :w] += pixel.astype(np.int16)[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("attack", ["none", "jpeg_q50", "h264_crf23"])
def test_files_marked_before_the_jnd_still_read(attack):
    """Issue 24 changed how the frame mark is written, not how v1 files read: v1's rule is
    one of the readings, so a file marked before reads as it did (0 errors after each)."""
    rgb = media.read_image(ASTRONAUT)
    transform = {**ATTACKS, "h264_crf23": lambda x: reencode_frame(x, crf=23)}[attack]
    reading = frame_mark.read_frame_mark(transform(frame_mark_v1(rgb)))
    assert reading.detected and reading.bit_errors == 0, reading
    assert not frame_mark.read_frame_mark(rgb).detected


def test_a_video_adds_up_its_frames_frame_marks():
    """The frames of a video read together decode with fewer errors than one alone
    (the mark is the same in each, the noise is not); unmarked frames stay unmarked."""
    rgb = media.read_image(ASTRONAUT)
    marked = frame_mark.embed_frame_mark(rgb)
    rng = np.random.default_rng(0)

    def noisy(image: np.ndarray) -> np.ndarray:
        noise = rng.normal(0, 18, image.shape[:2])[..., None]  # same on R, G, B: luma only
        return np.clip(image + noise, 0, 255).astype(np.uint8)

    frames = [frame_mark.read_frame_mark(noisy(marked)) for _ in range(12)]
    together = frame_mark.accumulate(frames)
    assert together.detected and together.bit_errors < np.median([f.bit_errors for f in frames])
    unmarked = frame_mark.accumulate([frame_mark.read_frame_mark(noisy(rgb)) for _ in range(12)])
    assert unmarked.readable and not unmarked.detected
    assert not frame_mark.accumulate([]).readable


def video_frame(path: Path, index: int) -> np.ndarray:
    frames = (f for batch in media.read_frames(path, 16) for f in batch)
    return next(f for i, f in enumerate(frames) if i == index)


# Bounds for frame 60 of the bundled clip (dark hair, a flat grey wall, a smooth cheek), in
# grey levels of low-passed luma change per flat/dark 16x16 block (evaluate.watermark.
# mark_visibility; benchmarks/RESULTS.md, issue 24). A coherent change of 1-2 levels there
# is just visible. Measured with both marks: mean 0.39 (v1: 1.09), 99th percentile 1.5
# (v1: 4.0), worst block 2.5 (v1: 5.4; a block of dark hair with strands, std 8, where the
# texture term allows up to 4 and which at 3x reads as hair, not a blotch); on the wall 0.28
# (v1: 0.56). The bounds leave ~25 % for CPU-to-CPU landmark differences and stay at or
# under half of v1's numbers; a regression to v1's marks fails every one of them.
MEAN_BLOTCH = 0.5
P99_BLOTCH = 2.0
WORST_BLOTCH = 3.2
WALL_BLOTCH = 0.35


def test_marks_stay_below_the_jnd_on_dark_hair_and_a_flat_wall(analyser):
    from slimswap.evaluate.watermark import blotch_map, flat_dark_blocks, mark_visibility

    rgb = video_frame(CLIP, 60)
    (face,) = analyser.detect(rgb)
    marked = embed_watermark(rgb, [face.kps])
    vis = mark_visibility(rgb, marked)
    assert vis.flat_dark > vis.blocks // 3  # the frame is mostly wall and hair
    assert vis.mean_blotch <= MEAN_BLOTCH, vis
    assert vis.p99_blotch <= P99_BLOTCH, vis
    assert vis.worst_blotch <= WORST_BLOTCH, vis
    wall = blotch_map(rgb, marked)[0:8, 24:32]  # x 384-512, y 0-128: the grey wall
    assert flat_dark_blocks(rgb)[0:8, 24:32].all() and wall.mean() <= WALL_BLOTCH
    assert vis.psnr_db >= 44 and vis.ssim >= 0.99, vis  # v1: 40.2 dB, 0.970
    reading = read_watermark(marked, analyser)
    assert reading.frame.bit_errors == 0 and reading.faces[0].detected, reading
    # the frame mark alone, against v1's (measured 0.26 against 0.56): the measure sees it
    v1 = mark_visibility(rgb, frame_mark_v1(rgb))
    assert mark_visibility(rgb, frame_mark.embed_frame_mark(rgb)).mean_blotch < 0.6 * v1.mean_blotch


@pytest.mark.shared
def test_marks_stay_below_the_jnd_on_a_shared_talking_head(shared_data, analyser):
    """The same bounds on the middle frame of a ../shared/data clip (measured: mean 0.32,
    p99 1.0, worst 2.0 on liveportrait_driving_d0)."""
    from slimswap.evaluate.watermark import mark_visibility

    path = shared_data / "videos" / "liveportrait_driving_d0.mp4"
    middle = media.probe_video(path).frame_count // 2
    rgb = video_frame(path, middle)
    faces = [f.kps for f in analyser.detect(rgb)]
    vis = mark_visibility(rgb, embed_watermark(rgb, faces))
    assert vis.mean_blotch <= MEAN_BLOTCH and vis.p99_blotch <= P99_BLOTCH, vis
    assert vis.worst_blotch <= WORST_BLOTCH, vis


def test_decision_rule_is_a_binomial_tail_bound():
    tail = sum(math.comb(64, i) for i in range(face_mark.MAX_BIT_ERRORS + 1)) / 2.0**64
    assert face_mark.FALSE_POSITIVE_BOUND == pytest.approx(
        face_mark.READINGS * face_mark.N_ALIGNMENTS * tail
    )
    assert face_mark.FALSE_POSITIVE_BOUND < 1e-6
    tail = sum(math.comb(64, i) for i in range(frame_mark.MAX_BIT_ERRORS + 1)) / 2.0**64
    assert frame_mark.FALSE_POSITIVE_BOUND == pytest.approx(len(frame_mark.RULES) * tail)
    assert frame_mark.FALSE_POSITIVE_BOUND + 4 * face_mark.FALSE_POSITIVE_BOUND < 1e-6


def test_odd_sizes_tiny_and_flat_images(analyser):
    rgb = media.read_image(ASTRONAUT)
    odd = embed_watermark(rgb[:333, :515])
    assert read_watermark(odd[:-1, :-1]).detected  # the video writer crops odd sizes by one pixel
    tiny = read_watermark(embed_watermark(rgb[:40, :40]), analyser)
    assert not tiny.readable and not tiny.detected
    flat = read_watermark(np.full((256, 256, 3), 128, np.uint8), analyser)
    assert flat.readable and not flat.detected and flat.faces == []


def test_watermark_survives_jpeg_q80_reencode(swapped_png, tmp_path, analyser):
    reencoded = tmp_path / "reupload.jpg"
    reencoded.write_bytes(jpeg_bytes(media.read_image(swapped_png), 80))
    report = verify_file(reencoded, analyser=analyser)
    assert not report.label_present and not report.c2pa.present  # metadata did not survive ...
    assert report.watermark_present and report.labelled  # ... the pixels did
    assert report.bit_errors[0] <= 2


@pytest.mark.slow
def test_watermark_survives_h264_reencode_of_swapped_video(swapped_mp4, tmp_path, analyser):
    reencoded = tmp_path / "reencoded.mp4"
    reencode_h264(swapped_mp4, reencoded, crf=23)
    after = verify_file(reencoded, frames=10, analyser=analyser)
    assert not after.label_present and not after.c2pa.present
    assert after.frames_checked == 10
    # the verdict a user gets: the video is marked, and its frame mark decodes over the ten
    # frames together with a wide margin (threshold frame_mark.MAX_BIT_ERRORS = 12)
    assert after.watermark_present, after.bit_errors
    assert after.video_frame_mark.bit_errors <= 4, after.video_frame_mark
    # frame by frame crf 23 sits near the threshold on this clip, and where depends on the CPU
    # (the swap's and the encoder's arithmetic): 10 of 10 frames on the AVX2 EPYC of sessions
    # 3-8, 9 of 10 on session 10's AVX-512 EPYC (per-frame errors 2-14); an unmarked frame
    # reads ~32 errors, so 8 of 10 still fails a mark that the re-encode really broke
    assert after.watermark_share >= 0.8, after.bit_errors


def test_label_opt_out_keeps_c2pa_and_the_watermark(tmp_path, analyser):
    out = tmp_path / "nolabel.jpg"
    swap_file(HOPPER, ASTRONAUT, out, load_swapper("classic"), SwapOptions(label=False), analyser)
    report = verify_file(out, analyser=analyser)
    assert report.label == {} and not report.label_present
    assert report.watermark_present and report.c2pa.label_present


def test_original_inputs_are_not_labelled(analyser):
    for path in (HOPPER, ASTRONAUT):
        report = verify_file(path, analyser=analyser)
        assert not report.labelled and not report.c2pa.present, path
    clip = verify_file(CLIP, frames=4, analyser=analyser)
    assert clip.frames_checked == 4 and clip.frames_marked == 0 and not clip.labelled


@pytest.mark.shared
def test_robustness_table_command_key_rows(shared_data, tmp_path):
    """The command behind benchmarks/RESULTS.md, on a CI-sized sample (full run: 200/1,000)."""
    attacks = ["none", "resize_50", "crop_10", "rotate_2"]
    proc = run_cli(
        "eval", "watermark", "--photos", "10", "--negatives", "100", "--no-video",
        *[arg for a in attacks for arg in ("--attack", a)], "--out", tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "watermark.json").read_text())
    rows = {(r["scheme"], r["attack"]): r for r in data["attacks"]}
    for attack in ("resize_50", "crop_10", "rotate_2"):
        assert rows["both", attack]["detected"] >= 9, rows["both", attack]  # 9 of 10 or all
    for attack in ("crop_10", "rotate_2"):
        assert rows["frame", attack]["detected"] <= 1  # what issue 15 fixed (the face mark)
    assert rows["frame", "resize_50"]["detected"] >= 9  # read at twice the size (issue 24)
    assert rows["both", "none"]["detected"] == 10
    negatives = {n["scheme"]: n for n in data["negatives"]}
    assert negatives["both"]["photos"] == 100 and negatives["both"]["faces"] >= 90
    assert negatives["both"]["false_positives"] == 0
    assert negatives["both"]["min_face_errors"] > face_mark.MAX_BIT_ERRORS
    assert data["psnr_db"]["both"]["median"] >= 40
    assert "| resize_50 |" in (tmp_path / "watermark.md").read_text()


# ------------------------------------------------------------------ the verify command


def test_verify_exit_codes_and_json(swapped_png, tmp_path):
    proc = run_cli("verify", swapped_png)
    assert proc.returncode == 0, proc.stderr
    assert "C2PA: valid signature, unverified issuer" in proc.stdout
    assert "metadata label: present" in proc.stdout and "watermark: present" in proc.stdout
    proc = run_cli("verify", swapped_png, "--json")
    assert proc.returncode == 0
    data = json.loads(proc.stdout)
    assert data["labelled"] and data["c2pa"]["valid"] and not data["c2pa"]["trusted"]
    assert data["c2pa"]["digital_source_types"] == [COMPOSITE]
    # lossless file: a clean read. Not exactly 0: the mark is read at the face found again in
    # the swap, and that detection's landmarks move by a fraction of a pixel between CPUs
    # (0 where the test was written, 1 on the AVX2 EPYC of sessions 3-8, 3 on session 10's
    # AVX-512 EPYC); the decision threshold is face_mark.MAX_BIT_ERRORS = 7, an unmarked face
    # reads ~32 of 64 wrong
    (errors,) = data["watermark"]["frames"][0]["face_mark_bit_errors"]
    assert errors <= 4
    proc = run_cli("verify", ASTRONAUT)
    assert proc.returncode == 1, proc.stderr
    assert "C2PA: absent" in proc.stdout and "no synthetic label found" in proc.stdout
    text = tmp_path / "notes.jpg"
    text.write_text("this is a text file, not a JPEG\n")
    proc = run_cli("verify", text)
    assert proc.returncode == 2 and proc.stderr.startswith("error:")
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = run_cli("verify", tmp_path / "missing.mp4")
    assert proc.returncode == 2 and "not found" in proc.stderr


def test_half_size_jpeg_copy_is_still_reported_as_labelled(tmp_path, analyser):
    """A re-upload: no metadata, no C2PA, half the size, JPEG; the face mark tells."""
    rgb = media.read_image(HOPPER)
    marked = embed_watermark(rgb, [analyser.detect(rgb)[0].kps])
    h, w = marked.shape[:2]
    small = tmp_path / "small.jpg"
    small.write_bytes(
        jpeg_bytes(cv2.resize(marked, (w // 2, h // 2), interpolation=cv2.INTER_AREA), 85)
    )
    proc = run_cli("verify", small)
    assert proc.returncode == 0, proc.stdout
    assert "C2PA: absent" in proc.stdout and "watermark: present" in proc.stdout


def test_mkv_outputs_get_no_c2pa_but_say_so(caplog):
    with caplog.at_level("WARNING"):
        assert credentials.output_signer(Path("out.mkv"), "classic") is None
    assert "cannot be embedded in .mkv" in caplog.text
    assert credentials.output_signer(Path("out.MP4"), "classic") is not None
