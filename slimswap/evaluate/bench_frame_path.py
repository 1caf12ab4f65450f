"""End to end on one video: decode -> swap -> marks -> encoded file, per stage, against a plain
decode + encode of the same video (`slimswap bench frame-path`; issue 21).

The reference row is the floor any swap path sits on: the same frames decoded and encoded
with the same writer settings and nothing in between, so `ratio` (swap time over reference
time) says how much the swap itself costs. Paths:
- `host`: the OpenCV frame path (`pipeline.swap_video`, what a CPU runs);
- `device`: the torch frame path (`frame_engine`: GPU-resident frames, batched analysis);
  `clips` > 1 runs that many copies of the video at once on the one device (total fps).
Runs on the GPU machine without dlib and without a C2PA signer (`--no-sign`, the default
there): the marks are embedded, the manifest is not.

    python -m slimswap.evaluate.bench_frame_path VIDEO --mode lite --device cuda --batch 16 \
        --precision fp16 --repeat 4 --clips 1,8 --out benchmarks/e2e
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Self

import numpy as np

from slimswap import media
from slimswap.errors import UserError

ISOLATE = ("", "decode", "encode", "both")  # Diagnostics.isolate: what of the codec is off


@dataclass(frozen=True)
class Diagnostics:
    """How a device row is taken apart to see where its time goes (none: as the CLI runs it).

    isolate takes the codec off the run to see what it costs the rest: "decode" replays frames
    decoded into memory beforehand (no decoding or conversion while timed), "encode" hands the
    frames to a writer that drops them, "both" does both. profile: a pyinstrument wall-clock
    profile of the first clip's thread (the one that launches the GPU work) written there as
    text, to see where that thread waits (pyinstrument is not a dependency: install it).
    in_thread: a single clip on a started thread (session 5's A/B; the CLI runs it on the
    calling thread). torch_profile: torch.profiler's op tables (host and device time) of
    batches 9-12 of the first clip, to tell a slow kernel from a host that waits inside an
    op's launch. rgb_io: decode to RGB and encode from RGB on the host's threads, as before
    session 6, even where the video's planes could go to the device (`media.plane_format`).
    """

    isolate: str = ""
    profile: Path | None = None
    in_thread: bool = False
    torch_profile: Path | None = None
    rgb_io: bool = False


DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "examples" / "grace_hopper.jpg"


def repeated_frames(
    path: Path, batch: int, repeat: int, workers: int = 1, planes: bool = False
) -> Iterator[list[np.ndarray]]:
    """The video's frames `repeat` times over, in batches (a short clip made long enough);
    planes: as decoded I420 planes (`media.read_planes`), not RGB."""
    for _ in range(repeat):
        yield from (
            media.read_planes(path, batch) if planes else media.read_frames(path, batch, workers)
        )


def repeated_info(path: Path, repeat: int) -> media.VideoInfo:
    """The probe of `path` with its frame count and duration multiplied by `repeat`."""
    info = media.probe_video(path)
    return replace(info, frame_count=info.frame_count * repeat, duration_s=info.duration_s * repeat)


def save_identity(identity, path: Path) -> Path:
    """A source identity as .npz (crop, landmarks, descriptor): lets a machine without dlib's
    model files (the GPU machine) swap the same person as this one."""
    np.savez(path, crop=identity.crop, landmarks=identity.landmarks, embedding=identity.embedding)
    return path


def load_identity(path: Path):
    from slimswap.swap.base import SourceIdentity

    with np.load(path) as z:
        return SourceIdentity(embedding=z["embedding"], crop=z["crop"], landmarks=z["landmarks"])


def reference(
    video: Path, batch: int, repeat: int, out: Path, workers: int = 1, planes: bool = False
) -> dict:
    """Decode + encode only: colour conversions on `workers` threads, as the swap path's, or
    with planes none at all (`read_planes`, `write_planes`: the device path's floor when the
    device converts the colours)."""
    info = repeated_info(video, repeat)
    t0 = time.perf_counter()
    n = 0
    with media.VideoWriter(out, info, None, workers=workers) as writer:
        write = writer.write_planes if planes else writer.write
        for frames in repeated_frames(video, batch, repeat, workers, planes):
            write(frames)
            n += len(frames)
    s = time.perf_counter() - t0
    what = "planes, no conversion" if planes else f"{workers} conversion threads"
    return {"path": f"decode+encode ({what})", "frames": n, "seconds": s, "fps": n / s}


def device_path(
    video: Path,
    source: Path,
    mode: str,
    device: str,
    batch: int,
    precision: str,
    repeat: int,
    clips: int,
    tmp: Path,
    watermark: bool = True,
    diag: Diagnostics = Diagnostics(),
) -> dict:
    """`clips` copies of the video through one FrameEngine at once (a thread each; one clip
    runs on the calling thread, as the CLI's swap does, unless `diag.in_thread`); `diag` takes
    the row apart (`Diagnostics`)."""
    import torch

    from slimswap.frame_engine import (
        IO_WORKERS,
        FrameEngine,
        mark_pool,
        start_mark_workers,
        swap_video_device,
    )
    from slimswap.options import SwapOptions
    from slimswap.swap.registry import load_swapper

    swapper = load_swapper(mode, device, precision)
    engine = FrameEngine(swapper, precision=precision)
    identity = (
        load_identity(source)
        if source.suffix == ".npz"
        else engine.identity(media.read_image(source))
    )
    options = SwapOptions(batch_size=batch)
    info = repeated_info(video, repeat)
    # warm-up: kernels, cuDNN autotuning, allocator (not timed)
    frames = next(iter(media.read_frames(video, batch)))
    for _ in range(2):
        engine.swap_frames(frames, engine.faces(frames, engine.upload(frames)), identity)
    marks = mark_pool(device)  # one pool of mark workers for every clip, started before the clock
    start_mark_workers(marks, frames[0])
    if device == "cuda":
        torch.cuda.synchronize()
    reports: list = [None] * clips
    errors: list[BaseException] = []

    planes = None if diag.rgb_io else media.plane_format(video)

    as_planes = planes is not None
    decoded = (
        list(repeated_frames(video, batch, 1, IO_WORKERS, as_planes))
        if diag.isolate in ("decode", "both")
        else []
    )

    def batches() -> Iterator[list[np.ndarray]]:
        if not decoded:
            return repeated_frames(video, batch, repeat, IO_WORKERS, as_planes)
        return (b for _ in range(repeat) for b in decoded)

    def writer(out: Path):
        if diag.isolate in ("encode", "both"):
            return _DroppingWriter()
        return media.VideoWriter(out, info, None, workers=IO_WORKERS)

    def one(k: int) -> None:
        profiler = None
        if diag.profile is not None and k == 0:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            profiler.start()
        ops = None
        if diag.torch_profile is not None and k == 0:
            from torch.profiler import ProfilerActivity, schedule

            ops = torch.profiler.profile(
                activities=[ProfilerActivity.CPU]
                + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else []),
                schedule=schedule(wait=8, warmup=2, active=4, repeat=1),
            )
            ops.start()
        try:
            out = tmp / f"device_{k}.mp4"
            reports[k] = swap_video_device(
                engine,
                identity,
                batches(),
                info.frame_count,
                options,
                lambda: writer(out),
                marks=marks,
                watermark=watermark,
                planes=planes,
                on_progress=(lambda *_: ops.step()) if ops is not None else None,
            )
        except BaseException as exc:  # noqa: BLE001 (re-raised by the caller)
            errors.append(exc)
        finally:
            if profiler is not None:
                profiler.stop()
                diag.profile.write_text(profiler.output_text(unicode=False, color=False))
            if ops is not None:
                ops.stop()
                table = ops.key_averages()
                diag.torch_profile.write_text(
                    "\n\n".join(
                        f"sorted by {key}\n" + table.table(sort_by=key, row_limit=30)
                        for key in ("self_cpu_time_total", "self_device_time_total")
                    )
                )

    t0 = time.perf_counter()
    if clips == 1 and not diag.in_thread:  # as `slimswap swap` runs it (RESULTS, session 5)
        one(0)
    else:
        threads = [threading.Thread(target=one, args=(k,)) for k in range(clips)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    wall = time.perf_counter() - t0
    marks.shutdown()
    if errors:
        raise errors[0]
    frames_total = sum(r.frames for r in reports)
    stages = {}
    for r in reports:
        for k, v in (r.stage_seconds or {}).items():
            stages[k] = stages.get(k, 0.0) + v
    without = {"decode": ", no decoding", "encode": ", no encoding", "both": ", no codec"}
    return {
        "path": f"device ({device}, {precision}, batch {batch}, {clips} clip(s) at once"
        f"{without.get(diag.isolate, '')}{', on a started thread' if diag.in_thread else ''}"
        f"{', RGB in and out on the host' if planes is None else ', planes converted on the device'})",
        "model": swapper.name,
        "frames": frames_total,
        "faces": sum(r.faces for r in reports),
        "seconds": wall,
        "fps": frames_total / wall,
        "stage_ms_per_frame": {k: 1000 * v / frames_total for k, v in stages.items()},
        # the launching threads' CPU time against the wall (one clip: waits = wall - CPU)
        "launcher_cpu_ms_per_frame": 1000
        * sum(r.launcher_cpu_seconds for r in reports)
        / frames_total,
        "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None,
    }


class _DroppingWriter:
    """A VideoWriter stand-in that drops the frames (`--isolate encode`)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def write(self, frames: list[np.ndarray]) -> None:
        pass

    write_planes = write


def host_path(video: Path, source: Path, mode: str, batch: int, repeat: int, tmp: Path) -> dict:
    """The OpenCV path (`pipeline.swap_video`) on this CPU, for the same video once."""
    from slimswap.options import SwapOptions
    from slimswap.pipeline import swap_video
    from slimswap.swap.registry import load_swapper

    swapper = load_swapper(mode, "cpu")
    options = SwapOptions(batch_size=batch, overwrite=True, label=False)
    t0 = time.perf_counter()
    rep = swap_video(source, video, tmp / "host.mp4", swapper, options)
    s = time.perf_counter() - t0
    return {
        "path": "host (OpenCV, cpu)",
        "model": swapper.name,
        "frames": rep.frames,
        "seconds": s,
        "fps": rep.frames / s,
        "stage_ms_per_frame": {
            k: 1000 * v / max(1, rep.frames) for k, v in rep.stage_seconds.items()
        },
    }


def run(
    video: Path,
    source: Path = DEFAULT_SOURCE,
    mode: str = "lite",
    device: str = "cpu",
    batch: int = 16,
    precision: str = "fp16",
    repeat: int = 1,
    clips: tuple[int, ...] = (1,),
    paths: tuple[str, ...] = ("reference", "device"),
    watermark: bool = True,
    out: Path | None = None,
    command: str = "",
    diag: Diagnostics = Diagnostics(),
) -> dict:
    """The rows (see the module docstring); prints them and writes <out>/e2e.json."""
    if not Path(video).is_file():
        raise UserError(f"video not found: {video}")
    if diag.isolate not in ISOLATE:
        raise UserError(f"--isolate must be decode, encode or both, got {diag.isolate!r}")
    info = media.probe_video(video)
    rows = []
    with tempfile.TemporaryDirectory(prefix="slimswap-e2e-") as d:
        tmp = Path(d)
        if "reference" in paths:
            rows.append(reference(video, batch, repeat, tmp / "ref.mp4"))
            if "device" in paths:  # the floor the device path sits on (its conversion threads)
                from slimswap.frame_engine import IO_WORKERS

                rows.append(reference(video, batch, repeat, tmp / "ref4.mp4", IO_WORKERS))
                if not diag.rgb_io and media.plane_format(video) is not None:
                    rows.append(reference(video, batch, repeat, tmp / "ref_p.mp4", planes=True))
        if "host" in paths:
            rows.append(host_path(video, source, mode, batch, repeat, tmp))
        if "device" in paths:
            for n in clips:
                rows.append(
                    device_path(
                        video,
                        source,
                        mode,
                        device,
                        batch,
                        precision,
                        repeat,
                        n,
                        tmp,
                        watermark,
                        diag,
                    )
                )
    refs = [r for r in rows if r["path"].startswith("decode+encode")]
    for r in rows:
        # device rows against the reference with their conversion threads, host rows the plain
        ref = (refs[-1] if r["path"].startswith("device") else refs[0]) if refs else None
        if ref is not None and r not in refs:
            r["ratio_to_decode_encode"] = (r["seconds"] / r["frames"]) / (
                ref["seconds"] / ref["frames"]
            )
    result = {
        "video": f"{Path(video).name} {info.width}x{info.height}, {info.frame_count} frames x {repeat}",
        "command": command,
        "host": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()}",
        "rows": rows,
    }
    import torch

    result["torch"] = torch.__version__
    if torch.cuda.is_available():
        result["gpu"] = torch.cuda.get_device_name(0)
    for r in rows:
        stages = "  ".join(f"{k} {v:.2f}" for k, v in r.get("stage_ms_per_frame", {}).items())
        ratio = r.get("ratio_to_decode_encode")
        print(
            f"{r['path']:60s} {r['frames']:5d} frames {r['fps']:8.1f} fps"
            + (f"  x{ratio:.2f} of decode+encode" if ratio else "")
            + (f"\n    ms/frame: {stages}" if stages else "")
            + (
                f"\n    launching thread: {r['launcher_cpu_ms_per_frame']:.2f} ms/frame of CPU "
                f"in {1000 / r['fps']:.2f} ms/frame of wall"
                if "launcher_cpu_ms_per_frame" in r
                else ""
            )
        )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "e2e.json").write_text(json.dumps(result, indent=1))
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("video", type=Path)
    ap.add_argument(
        "--source", type=Path, default=DEFAULT_SOURCE, help="photo, or .npz (save_identity)"
    )
    ap.add_argument("--mode", default="lite")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--precision", default="fp16")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--clips", default="1")
    ap.add_argument("--paths", default="reference,device")
    ap.add_argument("--no-watermark", action="store_true")
    ap.add_argument(
        "--switch-interval",
        type=float,
        help="sys.setswitchinterval seconds (Python's default 0.005): how long the main "
        "thread may wait for the GIL after each GPU launch while other threads hold it",
    )
    ap.add_argument(
        "--isolate",
        default="",
        help="decode, encode or both: run the device path without that part of the codec",
    )
    ap.add_argument(
        "--profile", type=Path, help="pyinstrument text profile of the first clip's thread"
    )
    ap.add_argument(
        "--in-thread",
        action="store_true",
        help="run a single clip on a started thread (the rows before session 5 did)",
    )
    ap.add_argument(
        "--torch-profile", type=Path, help="torch.profiler op tables of 4 batches of clip 1"
    )
    ap.add_argument(
        "--rgb-io",
        action="store_true",
        help="decode to and encode from RGB on the host (the path before session 6)",
    )
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    if a.switch_interval:
        sys.setswitchinterval(a.switch_interval)
    return run(
        a.video, a.source, a.mode, a.device, a.batch, a.precision, a.repeat,
        tuple(int(c) for c in a.clips.split(",")), tuple(a.paths.split(",")),
        not a.no_watermark, a.out,
        "python -m slimswap.evaluate.bench_frame_path " + " ".join(argv or sys.argv[1:]),
        Diagnostics(a.isolate, a.profile, a.in_thread, a.torch_profile, a.rgb_io),
    )  # fmt: skip


if __name__ == "__main__":
    main()
