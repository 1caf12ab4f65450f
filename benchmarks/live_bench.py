"""Live mode on this machine: sustained fps and capture-to-output latency.

Builds a single-face source (default 640x480 at 30 fps) from a clip (default the bundled
examples/clip.mp4; resized to the frame's height, padded left and right, played forwards and
backwards to the requested length), replays it as a live source in real time through
`slimswap.live.run_live` with a file output (the one sink a headless machine has; its H.264
encoding is the `output` stage), and writes every run's LiveStats with the machine's load to
--out. On a GPU (`--device cuda`) the loop runs the GPU frame path (DeviceFrameSwapper);
replay the source faster than the goal (--fps 120) so the fps measured is the loop's own
pace, not the source's. --source takes a photo or an identity .npz
(bench_frame_path.save_identity; the GPU machine has no dlib model files).

    PYTHONPATH=. .venv/bin/python benchmarks/live_bench.py --mode lite --mode classic
    PYTHONPATH=. python benchmarks/live_bench.py --device cuda --mode quality --width 1280 \
        --height 720 --fps 120 --source hopper_256.npz --out live_gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import cv2

from slimswap import media
from slimswap.evaluate.report import environment
from slimswap.live import run_live
from slimswap.options import LiveSettings
from slimswap.paths import EXAMPLES_DIR
from slimswap.swap.registry import find_entry

SOURCE = EXAMPLES_DIR / "grace_hopper.jpg"
CLIP = EXAMPLES_DIR / "clip.mp4"


def _square(frame):
    """The centre square of a frame (the clip's face, at the height the source frame has)."""
    h, w = frame.shape[:2]
    s = min(h, w)
    return frame[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]


def make_clip(
    path: Path,
    seconds: float,
    width: int = 640,
    height: int = 480,
    fps: int = 30,
    clip: Path = CLIP,
) -> Path:
    frames = [f for batch in media.read_frames(clip, 30) for f in batch]
    side = min(width, height)
    pad = (width - side) // 2
    frames = [
        cv2.copyMakeBorder(
            cv2.resize(_square(f), (side, side), interpolation=cv2.INTER_AREA),
            0,
            height - side,
            pad,
            width - side - pad,
            cv2.BORDER_REFLECT,
        )
        for f in frames
    ]
    loop = frames + frames[-2:0:-1]  # forwards and backwards: no jump at the seam
    count = round(seconds * fps)
    info = media.VideoInfo(width, height, Fraction(fps), count, count / fps)
    with media.VideoWriter(path, info, None) as writer:
        writer.write(loop[i % len(loop)] for i in range(count))
    return path


def without_signer_if_unavailable() -> str:
    """The GPU machine has neither `cryptography` nor `c2pa-python`: there the file sink writes
    its labels and marks but no C2PA manifest (signed once, when the file closes: no per-frame
    cost). Returns what the run did, for the JSON."""
    try:
        import c2pa  # noqa: F401
        import cryptography  # noqa: F401
    except ImportError:
        from slimswap.live import sinks

        sinks.provenance_signer = lambda *args, **kwargs: None
        return "no C2PA manifest (cryptography / c2pa-python not installed here)"
    return "C2PA-signed file output"


def model_file(mode: str, device: str = "cpu") -> str:
    entry = find_entry(mode, device)
    return "none (classic)" if entry is None else f"{entry.file} (sha256 {entry.sha256[:12]})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", action="append", default=[], help="lite, classic, ...")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--detect-scale", type=float, action="append", default=[])
    parser.add_argument("--detect-every", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=int, default=30, help="the source's replay rate")
    parser.add_argument("--clip", type=Path, default=CLIP)
    parser.add_argument("--source", type=Path, default=SOURCE, help="photo or identity .npz")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/live/live_cpu.json"))
    args = parser.parse_args()
    source = args.source
    if source.suffix == ".npz":
        from slimswap.evaluate.bench_frame_path import load_identity

        source = load_identity(source)
    modes = args.mode or ["lite", "classic"]
    scales = args.detect_scale or [0.5]
    signing = without_signer_if_unavailable()
    runs = []
    with tempfile.TemporaryDirectory(prefix="slimswap-live-bench-") as tmp:
        clip = make_clip(
            Path(tmp) / f"clip{args.width}x{args.height}.mp4",
            args.seconds, args.width, args.height, args.fps, args.clip,
        )  # fmt: skip
        for mode in modes:
            for scale in scales:
                settings = LiveSettings(
                    input=str(clip),
                    output="file",
                    out=Path(tmp) / f"out_{mode}.mp4",
                    overwrite=True,
                    mode=mode,
                    detect_scale=scale,
                    detect_every=args.detect_every,
                    device=args.device,
                )
                load_before = os.getloadavg()
                stats = run_live(source, settings)
                run = {
                    "mode": mode,
                    "model_file": model_file(mode, args.device),
                    "load_avg_1m_before_after": [
                        round(load_before[0], 2),
                        round(os.getloadavg()[0], 2),
                    ],
                    **stats.to_json(),
                }
                runs.append(run)
                print(f"{mode} (detect scale {scale}): {stats.summary()}", flush=True)
    result = {
        "command": "PYTHONPATH=. python benchmarks/live_bench.py " + " ".join(sys.argv[1:]),
        "machine": environment(args.device),
        "source": f"{args.clip.name} resized to {args.height}x{args.height}, padded to "
        f"{args.width}x{args.height}, {args.seconds:g} s at {args.fps} fps, replayed in real time",
        "signing": signing,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
