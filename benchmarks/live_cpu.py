"""Live mode on this machine: sustained fps and capture-to-output latency at 640x480.

Builds a 640x480 single-face source from the bundled examples/clip.mp4 (resized to 480x480,
padded left and right, played forwards and backwards to the requested length), replays it
as a live source in real time at 30 fps through `slimswap.live.run_live` with a file output
(the one sink a headless machine has; its H.264 encoding is the `output` stage), and
writes every run's LiveStats with the machine's load to benchmarks/live/live_cpu.json.

    PYTHONPATH=. .venv/bin/python benchmarks/live_cpu.py --mode lite --mode classic
"""

from __future__ import annotations

import argparse
import json
import os
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
FPS = 30


def make_clip(path: Path, seconds: float, width: int = 640, height: int = 480) -> Path:
    frames = [f for batch in media.read_frames(EXAMPLES_DIR / "clip.mp4", 30) for f in batch]
    side = min(width, height)
    pad = (width - side) // 2
    frames = [
        cv2.copyMakeBorder(
            cv2.resize(f, (side, side), interpolation=cv2.INTER_AREA),
            0,
            height - side,
            pad,
            width - side - pad,
            cv2.BORDER_REFLECT,
        )
        for f in frames
    ]
    loop = frames + frames[-2:0:-1]  # forwards and backwards: no jump at the seam
    count = round(seconds * FPS)
    info = media.VideoInfo(width, height, Fraction(FPS), count, count / FPS)
    with media.VideoWriter(path, info, None) as writer:
        writer.write(loop[i % len(loop)] for i in range(count))
    return path


def model_file(mode: str) -> str:
    entry = find_entry(mode, "cpu")
    return "none (classic)" if entry is None else f"{entry.file} (sha256 {entry.sha256[:12]})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", action="append", default=[], help="lite, classic, ...")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--detect-scale", type=float, action="append", default=[])
    parser.add_argument("--detect-every", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/live/live_cpu.json"))
    args = parser.parse_args()
    modes = args.mode or ["lite", "classic"]
    scales = args.detect_scale or [0.5]
    runs = []
    with tempfile.TemporaryDirectory(prefix="slimswap-live-bench-") as tmp:
        clip = make_clip(Path(tmp) / "clip640x480.mp4", args.seconds)
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
                )
                load_before = os.getloadavg()
                stats = run_live(SOURCE, settings)
                run = {
                    "mode": mode,
                    "model_file": model_file(mode),
                    "load_avg_1m_before_after": [
                        round(load_before[0], 2),
                        round(os.getloadavg()[0], 2),
                    ],
                    **stats.to_json(),
                }
                runs.append(run)
                print(f"{mode} (detect scale {scale}): {stats.summary()}", flush=True)
    result = {
        "command": "PYTHONPATH=. python benchmarks/live_cpu.py "
        + " ".join(f"--mode {m}" for m in modes)
        + "".join(f" --detect-scale {x:g}" for x in scales)
        + f" --detect-every {args.detect_every} --seconds {args.seconds:g}",
        "machine": environment("cpu"),
        "source": f"examples/clip.mp4 resized to 480x480, padded to 640x480, {args.seconds:g} s at {FPS} fps, replayed in real time",
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
