"""The GPU frame path's stages alone, one at a time, synchronised (issue 21): what each costs
without the other threads, at batch 16 (video) and batch 1 (live), and where the analysis
spends its host time (cProfile). Tells intrinsic cost from contention in the end-to-end rows.

    python benchmarks/frame_path_profile.py VIDEO --source hopper_256.npz --mode quality \\
        --out profile.json
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import time
from pathlib import Path

import torch
from gpu_analysis import timed  # this folder's scripts share it (run as scripts, from here)

from slimswap import media
from slimswap.evaluate.bench_frame_path import load_identity
from slimswap.frame_engine import FrameEngine
from slimswap.swap.registry import load_swapper


def stage_times(engine: FrameEngine, identity, frames: list, sync) -> dict[str, float]:
    """ms per frame of each device stage on this batch, alone."""
    batch = engine.upload(frames)
    faces = engine.faces(frames, batch)
    swapped = engine.swap(batch, faces, identity)
    row = {
        "upload": timed(lambda: engine.upload(frames), 10, sync),
        "detect+mesh": timed(lambda: engine.faces(frames, batch), 10, sync),
        "align+swap+paste": timed(lambda: engine.swap(batch, faces, identity), 10, sync),
        "download": timed(lambda: engine.download(swapped), 10, sync),
    }
    return {k: round(v / len(frames), 3) for k, v in row.items()}


def fresh_batches(engine: FrameEngine, video: Path, sync, n: int = 8) -> dict[str, float]:
    """Detect + mesh on `n` successive batches of the clip, each uploaded once, as the video
    path sees them (`stage_times` repeats one batch: whatever a batch memoises is free there)."""
    batches = [b for _, b in zip(range(n + 1), media.read_frames(video, 16))]
    engine.faces(batches[0], engine.upload(batches[0]))  # warm
    up = det = 0.0
    for frames in batches[1:]:
        sync()
        t0 = time.perf_counter()
        batch = engine.upload(frames)
        sync()
        t1 = time.perf_counter()
        engine.faces(frames, batch)
        sync()
        up, det = up + t1 - t0, det + time.perf_counter() - t1
    frames = 16 * n
    return {"upload": round(1000 * up / frames, 3), "detect+mesh": round(1000 * det / frames, 3)}


def interleaved(engine: FrameEngine, identity, video: Path, sync, n: int = 8) -> dict:
    """Detect + mesh of `n` fresh batches alone, then alternating with the swap as the video
    path runs them, under cuDNN as configured, cuDNN off for the analysis, and cuDNN's
    benchmark mode (session 6: the analysis's convolutions cost ms of host time each in the
    pipeline but not alone; the swap between them is what the alone rows never had)."""
    import contextlib

    batches = [b for _, b in zip(range(n), media.read_frames(video, 16))]
    uploaded = [engine.upload(f) for f in batches]

    def run(swap: bool, analysis_ctx) -> float:
        det = 0.0
        for frames, batch in zip(batches, uploaded):
            sync()
            t0 = time.perf_counter()
            with analysis_ctx():
                faces = engine.faces(frames, batch)
            sync()
            det += time.perf_counter() - t0
            if swap:
                engine.swap(batch, faces, identity)
                sync()
        return round(1000 * det / (16 * n), 3)

    plain = contextlib.nullcontext
    no_cudnn = lambda: torch.backends.cudnn.flags(enabled=False)
    row = {}
    for name, swap, ctx in (
        ("alone", False, plain),
        ("with swap", True, plain),
        ("alone again", False, plain),
        ("with swap, analysis without cuDNN", True, no_cudnn),
    ):
        run(swap, ctx)  # warm
        row[name] = run(swap, ctx)
        print(f"detect+mesh ms/frame, {name}: {row[name]}", flush=True)
    torch.backends.cudnn.benchmark = True
    run(True, plain)
    row["with swap, cudnn.benchmark"] = run(True, plain)
    torch.backends.cudnn.benchmark = False
    print(f"detect+mesh ms/frame, with swap, benchmark: {row['with swap, cudnn.benchmark']}")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("--source", type=Path, required=True)
    ap.add_argument("--mode", default="quality")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precision", default="fp16")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    engine = FrameEngine(load_swapper(a.mode, a.device, a.precision), precision=a.precision)
    identity = load_identity(a.source)
    all_frames = next(iter(media.read_frames(a.video, 16)))
    result: dict = {"cpu_count": os.cpu_count(), "mode": a.mode}
    try:
        result["cgroup_cpu_max"] = Path("/sys/fs/cgroup/cpu.max").read_text().strip()
    except OSError:
        pass
    result["sched_affinity"] = len(os.sched_getaffinity(0))
    result["cudnn_benchmark"] = torch.backends.cudnn.benchmark
    result["interleaved_detect_ms_per_frame"] = interleaved(engine, identity, a.video, sync)
    result["fresh_batches_ms_per_frame"] = fresh_batches(engine, a.video, sync)
    print("fresh batches: ms per frame", result["fresh_batches_ms_per_frame"], flush=True)
    for n in (16, 1):
        row = stage_times(engine, identity, all_frames[:n], sync)
        result[f"ms_per_frame_batch{n}"] = row
        print(f"batch {n}: ms per frame", row, flush=True)
    frames = all_frames
    batch = engine.upload(frames)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(5):
        engine.faces(frames, batch)
    sync()
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(18)
    result["profile_detect_batch16_x5"] = text.getvalue()
    print(text.getvalue())
    if a.out:
        a.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
