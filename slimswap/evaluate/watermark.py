"""`slimswap eval watermark`: what the invisible marks survive, and what they cost.

Marked set: in-the-wild CelebA photos (../shared/data/celeba_wild_subset, even-numbered files
in sorted order) in which dlib finds a face; each is marked the way the pipeline marks an
output (its largest face's 5 keypoints), then transformed the way re-uploads transform
pictures, then read back exactly as `slimswap verify` reads (faces detected again on the
transformed copy). Negative set: real unswapped photos, half LFW (evenly spaced over the
sorted files) and half CelebA (odd-numbered files, disjoint from the marked set), read as
they are: any mark found there is a false positive.

Two schemes are compared: `frame` (the whole-frame DWT-DCT mark alone, the mark before issue
15) and `both` (what outputs carry now: frame mark + face-anchored mark, either one counts).

`mark_visibility` measures what a viewer sees of a mark (issue 24): PSNR over the frame
hides a change concentrated where the eye is most sensitive, so the change is also measured
in the flat and dark 16x16 blocks, as blotches (its low-frequency part), not per pixel.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

from slimswap import media
from slimswap.errors import UserError
from slimswap.evaluate import report
from slimswap.face.analyser import FaceAnalyser
from slimswap.provenance import face_mark, frame_mark
from slimswap.provenance.watermark import embed_watermark, find_faces, read_watermark

# --------------------------------------------------------------- visibility (issue 24)
# A 16x16 luma block is "flat" when its std is under FLAT_STD grey levels: nothing there
# masks a change (contrast masking needs a masker well above its own threshold of ~1-2
# levels; the bundled clip's grey wall measures 0.2-1.2, its cheeks 1-3). It is "dark" when
# its mean is under DARK_MEAN and its std under DARK_STD: shadows and dark hair, where the eye
# adapted to the dark sees a change of 1-2 levels as a blotch (the mottled hair: mean
# 35-47, std 3-7). A block with a mean under DARK_MEAN and a larger std is an edge or strong
# texture (half of it bright, or hair with highlights), which masks the change.
VIS_BLOCK = 16
FLAT_STD = 3.0
DARK_MEAN = 64.0
DARK_STD = 10.0
# Blotches are coherent low-frequency change: the change is low-passed with a Gaussian of
# this sigma (keeps structures of ~8 px and more, the size of the marks' 8x8 blocks; drops
# pixel-level rounding noise, which the eye does not see as a blotch), then taken as an RMS
# per block.
BLOTCH_SIGMA = 2.0


def _luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)


def _blocks(a: np.ndarray) -> np.ndarray:
    """(by, bx, VIS_BLOCK**2) view of the whole blocks of a 2-D array."""
    b = VIS_BLOCK
    h, w = a.shape[0] - a.shape[0] % b, a.shape[1] - a.shape[1] % b
    return a[:h, :w].reshape(h // b, b, w // b, b).transpose(0, 2, 1, 3).reshape(h // b, w // b, -1)


def flat_dark_blocks(rgb: np.ndarray) -> np.ndarray:
    """(by, bx) bool: the 16x16 blocks of an RGB image that are flat or dark (see FLAT_STD)."""
    blocks = _blocks(_luma(rgb))
    std = blocks.std(-1)
    return (std < FLAT_STD) | ((blocks.mean(-1) < DARK_MEAN) & (std < DARK_STD))


@dataclass(frozen=True)
class MarkVisibility:
    """What a mark changes in one image (grey levels of BT.601 luma unless named otherwise)."""

    blocks: int  # whole 16x16 blocks in the image
    flat_dark: int  # of them flat or dark
    mean_abs: float  # mean |change| per pixel in the flat/dark blocks
    mean_blotch: float  # mean over flat/dark blocks of the low-passed change's RMS
    p99_blotch: float  # its 99th percentile over those blocks
    worst_blotch: float  # its largest value: the most visible flat/dark block
    worst_block: tuple[int, int]  # (x, y) of that block's top-left pixel
    psnr_db: float  # RGB, whole image
    ssim: float  # luma, whole image (scikit-image, 7x7 window)


def blotch_map(original: np.ndarray, marked: np.ndarray) -> np.ndarray:
    """(by, bx) RMS per 16x16 block of the low-passed luma change (BLOTCH_SIGMA)."""
    change = _luma(marked) - _luma(original)
    low = cv2.GaussianBlur(change, (0, 0), BLOTCH_SIGMA, borderType=cv2.BORDER_REFLECT)
    return np.sqrt(_blocks(low * low).mean(-1))


def mark_visibility(original: np.ndarray, marked: np.ndarray) -> MarkVisibility:
    """How visible the change from `original` to `marked` (RGB uint8, same size) is."""
    from skimage.metrics import structural_similarity

    sel = flat_dark_blocks(original)
    blotch = blotch_map(original, marked)
    change = np.abs(_blocks(_luma(marked) - _luma(original))).mean(-1)
    sel_blotch = blotch[sel] if sel.any() else np.zeros(1, np.float32)
    masked = np.where(sel, blotch, -1.0)
    by, bx = np.unravel_index(int(np.argmax(masked)), masked.shape)
    return MarkVisibility(
        blocks=int(sel.size),
        flat_dark=int(sel.sum()),
        mean_abs=float(change[sel].mean()) if sel.any() else 0.0,
        mean_blotch=float(sel_blotch.mean()),
        p99_blotch=float(np.percentile(sel_blotch, 99)),
        worst_blotch=float(sel_blotch.max()),
        worst_block=(int(bx * VIS_BLOCK), int(by * VIS_BLOCK)),
        psnr_db=_psnr(marked, original),
        ssim=float(structural_similarity(_luma(original), _luma(marked), data_range=255.0)),
    )


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    _, data = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy()


def _resize(rgb: np.ndarray, factor: float, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    h, w = rgb.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return cv2.resize(rgb, size, interpolation=interpolation)


def _crop(rgb: np.ndarray, fraction: float) -> np.ndarray:
    """Cut `fraction` of the width and height, 60 % of it from the left/top (off-grid)."""
    h, w = rgb.shape[:2]
    top, left = int(0.6 * fraction * h), int(0.6 * fraction * w)
    return rgb[top : h - int(0.4 * fraction * h), left : w - int(0.4 * fraction * w)].copy()


def _rotate(rgb: np.ndarray, degrees: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(rgb, matrix, (w, h), flags=cv2.INTER_LINEAR)


def _brightness_contrast(rgb: np.ndarray) -> np.ndarray:
    """Contrast x1.2 about mid-grey, then +12 grey levels (an 'enhance' slider)."""
    return np.clip(1.2 * (rgb.astype(np.float32) - 128) + 140, 0, 255).astype(np.uint8)


def _h264(rgb: np.ndarray, crf: int = 28) -> np.ndarray:
    """One H.264 frame (libx264, yuv420p, preset medium) encoded and decoded."""
    h, w = rgb.shape[:2]
    rgb = np.ascontiguousarray(rgb[: h - h % 2, : w - w % 2])
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": str(crf), "preset": "medium"})
        stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], "yuv420p"
        out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode(None))
    buf.seek(0)
    with av.open(buf) as inp:
        return next(inp.decode(video=0)).to_ndarray(format="rgb24")


def _screenshot(rgb: np.ndarray) -> np.ndarray:
    """Shown at 75 % (bilinear), captured and saved as JPEG q85."""
    return _jpeg(_resize(rgb, 0.75, cv2.INTER_LINEAR), 85)


ATTACKS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda x: x,
    "jpeg_q80": lambda x: _jpeg(x, 80),
    "jpeg_q50": lambda x: _jpeg(x, 50),
    "resize_50": lambda x: _resize(x, 0.5),
    "resize_25": lambda x: _resize(x, 0.25),
    "crop_10": lambda x: _crop(x, 0.10),
    "crop_25": lambda x: _crop(x, 0.25),
    "rotate_2": lambda x: _rotate(x, 2.0),
    "rotate_5": lambda x: _rotate(x, 5.0),
    "brightness_contrast": _brightness_contrast,
    "h264_crf28": _h264,
    "screenshot": _screenshot,
}
KEY_ATTACKS = ("resize_50", "crop_10", "rotate_2")  # what the mark must survive (issue 15)
SMALL_EYE_PX = 50.0  # faces below this lose the mark when halved (too few pixels left)
SCHEMES = ("frame", "both")


def marked_photos(root: Path) -> list[Path]:
    return sorted((root / "celeba_wild_subset").glob("*/*.jpg"))[0::2]


def negative_photos(root: Path, n: int) -> list[Path]:
    lfw = sorted((root / "lfw_deepfunneled").glob("*/*.jpg"))
    celeba = sorted((root / "celeba_wild_subset").glob("*/*.jpg"))[1::2]
    n_lfw = n - min(n // 2, len(celeba))
    if len(lfw) < n_lfw:
        raise UserError(f"need {n} negative photos, found {len(lfw) + len(celeba)} in {root}")
    step = len(lfw) // n_lfw
    return lfw[::step][:n_lfw] + celeba[: n - n_lfw]


@dataclass
class AttackRow:
    scheme: str
    attack: str
    photos: int = 0
    detected: int = 0
    by_face_mark: int = 0  # detections where the face mark decoded
    by_frame_mark: int = 0
    no_face: int = 0  # the detector found no face in the transformed copy
    bit_errors: list[int] = field(default_factory=list)  # fewest per photo
    hits: list[bool] = field(default_factory=list)  # per photo, in WatermarkEval.eye_px order

    @property
    def rate(self) -> float:
        return self.detected / self.photos if self.photos else 0.0


@dataclass
class NegativeRow:
    scheme: str
    photos: int = 0
    faces: int = 0
    false_positives: int = 0
    min_frame_errors: int = frame_mark.N_BITS
    min_face_errors: int = frame_mark.N_BITS


@dataclass
class WatermarkEval:
    attacks: list[AttackRow]
    negatives: list[NegativeRow]
    psnr_db: dict[str, dict[str, float]]  # scheme -> median / p5 / min
    embed_ms: dict[str, float]  # scheme -> median per frame
    read_ms: dict[str, float]  # scheme -> median per frame (detection included)
    eye_px: list[float] = field(default_factory=list)  # eye distance of each marked face
    hd_ms: dict[str, float] = field(default_factory=dict)  # embed / read of a 1280x720 frame
    video: list[dict] = field(default_factory=list)  # swapped clip, re-encoded: share of frames
    config: dict = field(default_factory=dict)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * np.log10(255.0**2 / mse) if mse > 0 else float("inf")


def _embed(scheme: str, rgb: np.ndarray, kps: np.ndarray) -> np.ndarray:
    return frame_mark.embed_frame_mark(rgb) if scheme == "frame" else embed_watermark(rgb, [kps])


def _read(
    scheme: str, rgb: np.ndarray, analyser: FaceAnalyser
) -> tuple[bool, bool, bool, int, int]:
    """(detected, by face mark, by frame mark, fewest bit errors, faces found)."""
    if scheme == "frame":
        r = frame_mark.read_frame_mark(rgb)
        errors = r.bit_errors if r.readable else frame_mark.N_BITS
        return r.detected, False, r.detected, errors, 0
    reading = read_watermark(rgb, analyser)
    by_face = any(f.detected for f in reading.faces)
    return reading.detected, by_face, reading.frame.detected, reading.bit_errors, len(reading.faces)


def _time_hd_frame(root: Path, analyser: FaceAnalyser, repeats: int = 10) -> dict[str, float]:
    """Median ms to mark (both marks, one face) and to read a 1280x720 video-sized frame."""
    for path in marked_photos(root):
        rgb = media.read_image(path)
        h, w = rgb.shape[:2]
        scale = min(1280 / w, 720 / h)
        frame = np.zeros((720, 1280, 3), np.uint8)
        small = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)
        frame[: small.shape[0], : small.shape[1]] = small
        faces = find_faces(frame, analyser)
        if faces:
            break
    else:
        return {}
    embed, read, detect = [], [], []
    for _ in range(repeats):
        t = time.perf_counter()
        marked = embed_watermark(frame, faces[:1])
        embed.append(time.perf_counter() - t)
        t = time.perf_counter()
        found = find_faces(marked, analyser)
        detect.append(time.perf_counter() - t)
        t = time.perf_counter()
        frame_mark.read_frame_mark(marked)
        for kps in found:
            face_mark.read_face_mark(marked, kps)
        read.append(time.perf_counter() - t)
    return {
        "embed": 1000 * float(np.median(embed)),
        "detect": 1000 * float(np.median(detect)),
        "read": 1000 * float(np.median(read)),
    }


def _reencode(src: Path, dst: Path, crf: int, scale: float = 1.0) -> None:
    """A re-upload of a video: decoded, optionally resized, re-encoded with libx264, no tags."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = inp.streams.video[0]
        w, h = round(stream.width * scale) // 2 * 2, round(stream.height * scale) // 2 * 2
        video = out.add_stream(
            "libx264", rate=stream.average_rate, options={"crf": str(crf), "preset": "medium"}
        )
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        for frame in inp.decode(stream):
            rgb = frame.to_ndarray(format="rgb24")
            if scale != 1.0:
                rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
            out.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(video.encode(None))


def evaluate_video(video: Path, source: Path, folder: Path, analyser: FaceAnalyser) -> list[dict]:
    """Swap `video` (classic swapper), re-encode it three ways, verify 12 frames of each."""
    from slimswap.pipeline import SwapOptions, swap_file
    from slimswap.provenance import verify_file
    from slimswap.swap.registry import load_swapper

    swapped = folder / "swapped.mp4"
    swap_file(source, video, swapped, load_swapper("classic"), SwapOptions(), analyser)
    rows = []
    for name, crf, scale in (
        ("as written", None, 1.0),
        ("H.264 crf 23", 23, 1.0),
        ("H.264 crf 28", 28, 1.0),
        ("resize 50 % + H.264 crf 28", 28, 0.5),
    ):
        path = swapped
        if crf is not None:
            path = folder / f"reencoded_{crf}_{scale}.mp4"
            _reencode(swapped, path, crf, scale)
        r = verify_file(path, frames=12, analyser=analyser)
        video = r.video_frame_mark
        rows.append(
            {
                "video": name,
                "c2pa": r.c2pa.label_present,
                "frames_marked": r.frames_marked,
                "frames_checked": r.frames_checked,
                "share": r.watermark_share,
                "all_frames_bit_errors": video.bit_errors if video is not None else None,
                "watermark_present": r.watermark_present,
            }
        )
    return rows


def evaluate_watermark(
    root: Path,
    photos: int = 200,
    negatives: int = 1000,
    attacks: Sequence[str] = tuple(ATTACKS),
    schemes: Sequence[str] = SCHEMES,
    analyser: FaceAnalyser | None = None,
    progress: Callable[[str], None] | None = None,
    video: Path | None = None,
) -> WatermarkEval:
    """Detection rate per attack and scheme, false positives on unmarked photos, PSNR, cost."""
    unknown = [a for a in attacks if a not in ATTACKS] + [s for s in schemes if s not in SCHEMES]
    if unknown:
        raise UserError(f"unknown attack or scheme: {', '.join(unknown)}")
    analyser = analyser or FaceAnalyser()
    rows = {(s, a): AttackRow(s, a) for s in schemes for a in attacks}
    psnr: dict[str, list[float]] = {s: [] for s in schemes}
    embed_s: dict[str, list[float]] = {s: [] for s in schemes}
    read_s: dict[str, list[float]] = {s: [] for s in schemes}
    used = 0
    eye_px: list[float] = []
    for path in marked_photos(root):
        if used >= photos:
            break
        rgb = media.read_image(path)
        faces = find_faces(rgb, analyser)
        if not faces:
            continue
        used += 1
        eye_px.append(float(np.linalg.norm(faces[0][0] - faces[0][1])))
        for scheme in schemes:
            t = time.perf_counter()
            marked = _embed(scheme, rgb, faces[0])
            embed_s[scheme].append(time.perf_counter() - t)
            psnr[scheme].append(_psnr(marked, rgb))
            for attack in attacks:
                row = rows[scheme, attack]
                t = time.perf_counter()
                detected, by_face, by_frame, errors, n_faces = _read(
                    scheme, ATTACKS[attack](marked), analyser
                )
                if attack == "none":
                    read_s[scheme].append(time.perf_counter() - t)
                row.photos += 1
                row.detected += detected
                row.by_face_mark += by_face
                row.by_frame_mark += by_frame
                row.no_face += scheme != "frame" and n_faces == 0
                row.bit_errors.append(errors)
                row.hits.append(bool(detected))
        if progress and used % 10 == 0:
            progress(f"marked photos: {used}/{photos}")
    if used < photos:
        raise UserError(f"only {used} photos with a face under {root}; asked for {photos}")
    negative_rows = []
    negative_paths = negative_photos(root, negatives)
    for scheme in schemes:
        neg = NegativeRow(scheme)
        for i, path in enumerate(negative_paths):
            rgb = media.read_image(path)
            if scheme == "frame":
                reading = read_watermark(rgb, None)
            else:
                reading = read_watermark(rgb, analyser)
            neg.photos += 1
            neg.faces += len(reading.faces)
            neg.false_positives += reading.detected
            if reading.frame.readable:
                neg.min_frame_errors = min(neg.min_frame_errors, reading.frame.bit_errors)
            for f in reading.faces:
                neg.min_face_errors = min(neg.min_face_errors, f.bit_errors)
            if progress and (i + 1) % 100 == 0:
                progress(f"negatives ({scheme}): {i + 1}/{len(negative_paths)}")
        negative_rows.append(neg)

    hd_ms = _time_hd_frame(root, analyser) if "both" in schemes else {}
    video_rows = []
    if video is not None:
        import tempfile

        from slimswap.paths import EXAMPLES_DIR

        with tempfile.TemporaryDirectory() as tmp:
            video_rows = evaluate_video(
                video, EXAMPLES_DIR / "grace_hopper.jpg", Path(tmp), analyser
            )

    def stats(values: list[float]) -> dict[str, float]:
        v = np.asarray(values, np.float64)
        return {
            "median": float(np.median(v)),
            "p5": float(np.percentile(v, 5)),
            "min": float(v.min()),
        }

    return WatermarkEval(
        attacks=list(rows.values()),
        negatives=negative_rows,
        psnr_db={s: stats(psnr[s]) for s in schemes},
        embed_ms={s: 1000 * float(np.median(embed_s[s])) for s in schemes},
        read_ms={s: 1000 * float(np.median(read_s[s])) for s in schemes if read_s[s]},
        eye_px=eye_px,
        hd_ms=hd_ms,
        video=video_rows,
        config={
            "photos": photos,
            "negatives": negatives,
            "attacks": list(attacks),
            "schemes": list(schemes),
            "face_mark": {
                "max_bit_errors": face_mark.MAX_BIT_ERRORS,
                "alignments_searched": face_mark.N_ALIGNMENTS,
                "false_positive_bound_per_face": face_mark.FALSE_POSITIVE_BOUND,
                "delta": face_mark.DELTA,
            },
            "frame_mark": {"max_bit_errors": frame_mark.MAX_BIT_ERRORS, "delta": frame_mark.DELTA},
        },
    )


def markdown(result: WatermarkEval) -> str:
    schemes = result.config["schemes"]
    headers = ["attack"] + [f"detected ({s})" for s in schemes]
    if "both" in schemes:
        headers += ["by face mark", "by frame mark", "no face found", "median bit errors (both)"]
    by = {(r.scheme, r.attack): r for r in result.attacks}
    rows = []
    for attack in result.config["attacks"]:
        row: list = [attack]
        for s in schemes:
            r = by[s, attack]
            row.append(f"{r.detected}/{r.photos} ({100 * r.rate:.0f}%)")
        if "both" in schemes:
            r = by["both", attack]
            row += [r.by_face_mark, r.by_frame_mark, r.no_face, float(np.median(r.bit_errors))]
        rows.append(row)
    attacks_md = report.markdown_table(headers, rows)
    neg_md = report.markdown_table(
        [
            "scheme",
            "unmarked photos",
            "faces read",
            "false positives",
            "fewest errors (frame / face)",
        ],
        [
            [
                n.scheme,
                n.photos,
                n.faces,
                n.false_positives,
                f"{n.min_frame_errors} / {n.min_face_errors}",
            ]
            for n in result.negatives
        ],
    )
    cost_md = report.markdown_table(
        ["scheme", "PSNR median dB", "PSNR 5th pct", "PSNR min", "embed ms/frame", "read ms/frame"],
        [
            [
                s,
                result.psnr_db[s]["median"],
                result.psnr_db[s]["p5"],
                result.psnr_db[s]["min"],
                result.embed_ms[s],
                result.read_ms.get(s, float("nan")),
            ]
            for s in schemes
        ],
    )
    eye = np.asarray(result.eye_px)
    by_size = []
    for attack in ("resize_50", "resize_25"):
        if ("both", attack) in by:
            hits = np.asarray(by["both", attack].hits)
            by_size.append(
                [attack]
                + [
                    f"{int(hits[m].sum())}/{int(m.sum())}"
                    for m in (eye < SMALL_EYE_PX, eye >= SMALL_EYE_PX)
                ]
            )
    size_md = (
        "\n\nBy face size (both marks; eye distance in the original photo):\n\n"
        + report.markdown_table(
            ["attack", f"eyes < {SMALL_EYE_PX:.0f} px apart", f"eyes >= {SMALL_EYE_PX:.0f} px"],
            by_size,
        )
        if by_size
        else ""
    )
    hd = result.hd_ms
    hd_md = (
        f"\n\nA 1280x720 frame with one face: embed {hd['embed']:.1f} ms, verify "
        f"{hd['detect'] + hd['read']:.0f} ms ({hd['detect']:.0f} ms of it dlib face detection)."
        if hd
        else ""
    )
    video_md = (
        "\n\nA swapped video (both marks), re-uploaded: frames where a mark decodes, of 12 "
        "checked; the frame mark read over the 12 at once; `verify`'s verdict:\n\n"
        + report.markdown_table(
            ["video", "C2PA label", "frames marked", "share", "frame mark, all 12", "verdict"],
            [
                [
                    v["video"],
                    v["c2pa"],
                    f"{v['frames_marked']}/{v['frames_checked']}",
                    v["share"],
                    f"{v.get('all_frames_bit_errors')} bit errors",
                    "marked" if v.get("watermark_present") else "not marked",
                ]
                for v in result.video
            ],
        )
        if result.video
        else ""
    )
    fm = result.config["face_mark"]
    return (
        f"{attacks_md}{size_md}{video_md}\n\nFalse positives (unmarked real photos):\n\n{neg_md}\n\n"
        f"PSNR (marked vs unmarked, whole photo) and cost on one CPU core (medians over the "
        f"photos, read includes face detection):\n\n{cost_md}{hd_md}\n\n"
        f"Face mark rule: <= {fm['max_bit_errors']} of 64 bits wrong at the best of "
        f"{fm['alignments_searched']} alignments; union bound on a false positive "
        f"{fm['false_positive_bound_per_face']:.1e} per face. Frame mark rule: <= "
        f"{result.config['frame_mark']['max_bit_errors']} of 64 bits wrong in any of its "
        f"{len(frame_mark.RULES)} readings ({frame_mark.FALSE_POSITIVE_BOUND:.1e} per frame).\n"
    )


def save_watermark_report(
    result: WatermarkEval, out: Path, command: str, env: dict
) -> dict[str, Path]:
    data = {"command": command, "environment": env, **asdict(result)}
    md = report.header("Watermark robustness", env, command) + "\n" + markdown(result)
    return {
        "json": report.write_json(out / "watermark.json", data),
        "md": report.write_text(out / "watermark.md", md),
    }
