"""How visible the invisible watermarks are (issue 24), on real frames and photos.

    PYTHONPATH=. python benchmarks/watermark_visibility.py --label before   # at the old code
    PYTHONPATH=. python benchmarks/watermark_visibility.py --label after    # at the new code

Each run marks every sample the way the pipeline marks an output frame (the whole-frame mark,
then the face mark on every face the default analyser finds) and measures marked against
unmarked with `slimswap.evaluate.watermark.mark_visibility`: the change in the flat or dark
16x16 blocks (mean |change| per pixel, and blotches: the RMS of the low-passed change per
block, mean / 99th percentile / worst), PSNR and SSIM. The frame mark alone is measured too
(a frame where no face is found carries only that one).

Samples: frames 0, 30, 60 and 90 of the bundled clip (examples/clip.mp4) and, when
../shared/data is there, the middle frame of each clip in videos/, deepface test-set photos
and in-the-wild CelebA photos. Runs are kept side by side in visibility.json under their
label (with the commit they ran at), and visibility.md shows them all.

3x crops (unmarked | marked | change x16 around mid-grey) of the hair and the background of
frame 60 of the bundled clip are written next to the report (examples/ is redistributable);
crops of shared-data frames go to --private (default under /tmp), never into the repository.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slimswap import media
from slimswap.evaluate import report
from slimswap.evaluate.watermark import (
    BLOTCH_SIGMA,
    DARK_MEAN,
    DARK_STD,
    FLAT_STD,
    VIS_BLOCK,
    mark_visibility,
)
from slimswap.face.analyser import FaceAnalyser
from slimswap.paths import EXAMPLES_DIR, REPO_ROOT, shared_data_dir
from slimswap.provenance import embed_watermark, frame_mark
from slimswap.provenance.watermark import find_faces

CLIP_FRAMES = (0, 30, 60, 90)
# (x, y, w, h) of the crops looked at in frame 60 of the bundled clip: dark hair left of the
# cheek (the mottling), and the flat grey wall top right
CROPS = {"hair": (80, 290, 130, 130), "background": (380, 0, 130, 130)}
ZOOM = 3


def video_frames(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    out, i = {}, 0
    for batch in media.read_frames(path, 16):
        for rgb in batch:
            if i in wanted:
                out[i] = rgb
            i += 1
        if len(out) == len(wanted):
            break
    return out


def samples(root: Path | None, photos: int) -> list[tuple[str, str, np.ndarray]]:
    """(set, name, RGB image): the bundled clip's frames, then shared-data frames and photos."""
    clip = EXAMPLES_DIR / "clip.mp4"
    out = [("clip", f"clip.mp4#{i}", f) for i, f in video_frames(clip, set(CLIP_FRAMES)).items()]
    if root is None:
        return out
    for path in sorted((root / "videos").glob("*.mp4")):
        middle = media.probe_video(path).frame_count // 2
        (rgb,) = video_frames(path, {middle}).values()
        out.append(("videos", f"{path.name}#{middle}", rgb))
    for path in sorted((root / "deepface_testset").glob("*/*.jpg"))[:photos]:
        out.append(("deepface", str(path.relative_to(root)), media.read_image(path)))
    for path in sorted((root / "celeba_wild_subset").glob("*/*.jpg"))[0::2][:photos]:
        out.append(("celeba", str(path.relative_to(root)), media.read_image(path)))
    return out


def zoomed(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    crop = rgb[y : y + h, x : x + w]
    return cv2.resize(
        crop, (ZOOM * crop.shape[1], ZOOM * crop.shape[0]), interpolation=cv2.INTER_NEAREST
    )


def crop_strip(
    original: np.ndarray, marked: np.ndarray, box: tuple[int, int, int, int]
) -> np.ndarray:
    """unmarked | marked | change x16 around mid-grey, each at ZOOM x, white gaps (RGB)."""
    change = np.clip(128 + 16 * (marked.astype(np.int16) - original), 0, 255).astype(np.uint8)
    tiles = [zoomed(im, box) for im in (original, marked, change)]
    gap = np.full((tiles[0].shape[0], 6, 3), 255, np.uint8)
    return np.hstack([tiles[0], gap, tiles[1], gap, tiles[2]])


def save_png(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rgb[..., ::-1])
    return path


def git_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "slimswap"))
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if dirty else "")


def summarise(rows: list[dict], key: str) -> dict[str, dict[str, float]]:
    """Per sample set: medians and the worst case of the visibility numbers of `key`."""
    out = {}
    for name in dict.fromkeys(r["set"] for r in rows):
        v = [r[key] for r in rows if r["set"] == name]

        def col(field: str, v=v) -> np.ndarray:
            return np.asarray([x[field] for x in v], np.float64)

        out[name] = {
            "images": len(v),
            "flat_dark_share": float(col("flat_dark").sum() / col("blocks").sum()),
            "mean_abs_median": float(np.median(col("mean_abs"))),
            "mean_blotch_median": float(np.median(col("mean_blotch"))),
            "mean_blotch_max": float(col("mean_blotch").max()),
            "p99_blotch_median": float(np.median(col("p99_blotch"))),
            "worst_blotch_max": float(col("worst_blotch").max()),
            "psnr_median": float(np.median(col("psnr_db"))),
            "psnr_min": float(col("psnr_db").min()),
            "ssim_median": float(np.median(col("ssim"))),
            "ssim_min": float(col("ssim").min()),
        }
    return out


def markdown(runs: dict) -> str:
    headers = [
        "run", "marks", "set", "images", "flat/dark blocks", "mean abs change",
        "blotch mean (median img)", "blotch mean (worst img)", "blotch p99 (median img)",
        "worst blotch", "PSNR median", "PSNR min", "SSIM median", "SSIM min",
    ]  # fmt: skip
    rows = []
    for label, run in runs.items():
        for key, marks in (("both", "frame + face"), ("frame", "frame only")):
            for name, s in run["summary"][key].items():
                rows.append(
                    [
                        f"{label} ({run['commit']})", marks, name, s["images"],
                        f"{100 * s['flat_dark_share']:.0f}%", s["mean_abs_median"],
                        s["mean_blotch_median"], s["mean_blotch_max"], s["p99_blotch_median"],
                        s["worst_blotch_max"], s["psnr_median"], s["psnr_min"],
                        s["ssim_median"], s["ssim_min"],
                    ]
                )  # fmt: skip
    clip60 = [
        [label, r["name"], r["both"]["mean_blotch"], r["both"]["worst_blotch"],
         r["both"]["mean_abs"], r["both"]["psnr_db"], r["both"]["ssim"]]
        for label, run in runs.items()
        for r in run["samples"]
        if r["name"] == "clip.mp4#60"
    ]  # fmt: skip
    return (
        "# Watermark visibility (issue 24)\n\n"
        f"Flat/dark block: {VIS_BLOCK}x{VIS_BLOCK} luma block with std < {FLAT_STD:g}, or mean "
        f"< {DARK_MEAN:g} and std < {DARK_STD:g} grey levels. Blotch: RMS over the block of the luma change low-passed "
        f"with a Gaussian of sigma {BLOTCH_SIGMA:g} px (grey levels). Medians and worst cases "
        "over the images of each set; `both` is what an output carries (frame mark + face "
        "mark on every face found).\n\n"
        + report.markdown_table(headers, rows)
        + "\n\nFrame 60 of the bundled clip (both marks):\n\n"
        + report.markdown_table(
            ["run", "frame", "blotch mean", "worst blotch", "mean abs change", "PSNR", "SSIM"],
            clip60,
        )
        + "\n\n"
        + "\n".join(
            f"- {label}: `{run['command']}`, {run['environment']['cpu']}, {run['date']}, "
            f"embed median {run['embed_ms_median']:.1f} ms per sample (both marks)"
            for label, run in runs.items()
        )
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", required=True, help="Name of this run (e.g. before, after).")
    parser.add_argument("--photos", type=int, default=30, help="Photos per shared-data set.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/watermark"))
    parser.add_argument(
        "--private", type=Path, default=Path("/tmp/slimswap_watermark_crops"),
        help="Where crops of shared-data frames go (never commit them).",
    )  # fmt: skip
    args = parser.parse_args()
    root = shared_data_dir()
    analyser = FaceAnalyser()
    rows, embed_s = [], []
    for set_name, name, rgb in samples(root, args.photos):
        faces = find_faces(rgb, analyser)
        t = time.perf_counter()
        both = embed_watermark(rgb, faces)
        embed_s.append(time.perf_counter() - t)
        frame_only = frame_mark.embed_frame_mark(rgb)
        row = {
            "set": set_name,
            "name": name,
            "size": [int(rgb.shape[1]), int(rgb.shape[0])],
            "faces": len(faces),
            "both": asdict(mark_visibility(rgb, both)),
            "frame": asdict(mark_visibility(rgb, frame_only)),
        }
        rows.append(row)
        print(
            f"{name}: blotch mean {row['both']['mean_blotch']:.2f} worst "
            f"{row['both']['worst_blotch']:.2f}, PSNR {row['both']['psnr_db']:.1f}, "
            f"SSIM {row['both']['ssim']:.4f}",
            flush=True,
        )
        if name == "clip.mp4#60":
            for part, box in CROPS.items():
                save_png(args.out / f"clip60_{part}_{args.label}.png", crop_strip(rgb, both, box))
        elif set_name == "videos":  # around the worst flat/dark block, to look at, not to keep
            x, y = row["both"]["worst_block"]
            h, w = rgb.shape[:2]
            x0, y0 = min(max(0, x - 56), max(0, w - 128)), min(max(0, y - 56), max(0, h - 128))
            strip = crop_strip(rgb, both, (x0, y0, 128, 128))
            save_png(args.private / f"{Path(name).stem}_{args.label}.png", strip)
    path = args.out / "visibility.json"
    data = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    data["runs"][args.label] = {
        "commit": git_commit(),
        "command": "PYTHONPATH=. python benchmarks/watermark_visibility.py "
        + " ".join(sys.argv[1:]),
        "environment": report.environment("cpu"),
        "date": time.strftime("%Y-%m-%d"),
        "block": VIS_BLOCK,
        "embed_ms_median": 1000 * float(np.median(embed_s)),
        "summary": {key: summarise(rows, key) for key in ("both", "frame")},
        "samples": rows,
    }
    report.write_json(path, data)
    md = markdown(data["runs"])
    report.write_text(args.out / "visibility.md", md)
    print(md)


if __name__ == "__main__":
    main()
