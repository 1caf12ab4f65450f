"""`slimswap bench`, end to end: one video through `pipeline.swap_video` per row, in a fresh
child process (`python -m slimswap.evaluate.bench_e2e e2e SPEC_JSON`) so its peak memory and
warm caches are its own, with the per-stage seconds and GPU use; and cold start, a fresh
`slimswap swap` process timed from outside."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Self

import numpy as np

from slimswap.errors import UserError
from slimswap.evaluate import report
from slimswap.evaluate.bench import STAGES, BenchConfig, Variant, peak_rss_mib, run_measured
from slimswap.face.align import align, transform_points
from slimswap.swap.base import SourceIdentity, Swapper

if TYPE_CHECKING:
    from slimswap.face.analyser import FaceAnalyser


def trim_video(src: Path, dst: Path, max_frames: int) -> Path:
    """The first max_frames frames of src as a new video (no audio), for quick runs."""
    from slimswap import media

    info = media.probe_video(src)
    written = 0
    with media.VideoWriter(dst, info, None) as writer:
        for batch in media.read_frames(src, 16):
            batch = batch[: max_frames - written]
            writer.write(batch)
            written += len(batch)
            if written >= max_frames:
                break
    return dst


class GpuUtilSampler:
    """Mean GPU utilisation (%) while a job runs: NVML through torch, else nvidia-smi."""

    def __init__(self, period_s: float = 0.1) -> None:
        self.period_s = period_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> float | None:
        try:
            import torch

            return float(torch.cuda.utilization())
        except (ImportError, RuntimeError):  # no pynvml: ask nvidia-smi
            try:
                out = subprocess.run(
                    [
                        "nvidia-smi",
                        "--query-gpu=utilization.gpu",
                        "--format=csv,noheader,nounits",
                        "-i",
                        "0",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=5,
                    check=True,
                )
                return float(out.stdout.strip().splitlines()[0])
            except (OSError, subprocess.SubprocessError, ValueError, IndexError):
                return None

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            value = self._read()
            if value is None:
                return
            self.samples.append(value)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _warm(
    swapper: Swapper,
    identity: SourceIdentity,
    video: Path,
    analyser: FaceAnalyser,
    v: Variant,
    batch: int,
) -> None:
    """Call the swapper on the batch sizes the pipeline will use (compiles, captures, allocates)."""
    from slimswap import media

    frame = next(media.read_frames(video, 1))[0]
    faces = analyser.detect(frame)
    if not faces:
        return
    crop, affine = align(frame, faces[0].kps, swapper.resolution)
    lm = transform_points(faces[0].landmarks, affine).astype(np.float32)
    sizes = (
        [1, batch]
        if v.compile == "none"
        else [2**k for k in range(batch.bit_length()) if 2**k <= batch]
    )
    for n in sizes:
        swapper.swap(
            np.repeat(crop[None], n, 0), identity, target_landmarks=np.repeat(lm[None], n, 0)
        )


def e2e_in_process(spec: dict) -> dict:
    """One video through `swap_video` with one variant; run by the child process."""
    from slimswap import media
    from slimswap.face.analyser import FaceAnalyser
    from slimswap.pipeline import SwapOptions, load_source_identity, swap_video

    v = Variant(**spec["variant"])
    video, source, out = Path(spec["video"]), Path(spec["source"]), Path(spec["output"])
    batch = int(spec["video_batch"])
    cuda = v.device == "cuda" and v.backend != "numpy"
    analyser = FaceAnalyser()
    swapper = v.load()
    t = time.perf_counter()
    identity = load_source_identity(source, analyser, swapper.resolution)  # loads dlib's models too
    _warm(swapper, identity, video, analyser, v, batch)
    warmup_s = time.perf_counter() - t
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    options = SwapOptions(overwrite=True, batch_size=batch)
    if cuda:
        with GpuUtilSampler() as sampler:
            rep = swap_video(source, video, out, swapper, options, analyser)
    else:
        rep = swap_video(source, video, out, swapper, options, analyser)
    info = media.probe_video(video)
    # the seven stages always (0 when unused), then any stage the pipeline added since
    stages = {
        s: rep.stage_seconds.get(s, 0.0)
        for s in [*STAGES, *sorted(set(rep.stage_seconds) - set(STAGES))]
    }
    staged = sum(stages.values())
    result = {
        "video": spec["video_name"],
        "width": info.width,
        "height": info.height,
        "frames": rep.frames,
        "frames_swapped": rep.frames_swapped,
        "seconds": rep.seconds,
        "fps": rep.fps,
        "fps_stages": rep.frames / staged if staged > 0 else 0.0,
        "stage_ms_per_frame": {s: 1000.0 * sec / max(rep.frames, 1) for s, sec in stages.items()},
        "other_ms_per_frame": 1000.0 * max(rep.seconds - staged, 0.0) / max(rep.frames, 1),
        "bottleneck": max(stages, key=stages.get),
        "warmup_s": warmup_s,
        "peak_rss_mib": peak_rss_mib(),
    }
    if cuda:
        import torch

        result["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
        if sampler.samples:
            result["gpu_util_mean_pct"] = float(np.mean(sampler.samples))
    return result


def bench_video(v: Variant, video: Path, name: str, cfg: BenchConfig, tmp: Path) -> dict:
    """End to end in a fresh process, so peak memory and warm caches belong to this row only."""
    spec = {
        "variant": asdict(v),
        "video": str(video),
        "video_name": name,
        "source": str(cfg.source),
        "output": str(tmp / f"e2e_{abs(hash((v.name, name)))}.mp4"),
        "video_batch": cfg.video_batch,
    }
    cmd = [sys.executable, "-m", "slimswap.evaluate.bench_e2e", "e2e", json.dumps(spec)]
    _, rc, _, out, err = run_measured(cmd)
    if rc != 0:
        raise UserError(
            f"end-to-end run of {v.name} on {name} failed (exit {rc}): {err.strip()[-800:]}"
        )
    return json.loads(out.strip().splitlines()[-1])


def cold_start(mode: str, cfg: BenchConfig, frame_png: Path, tmp: Path) -> dict:
    """Wall time of `slimswap swap` on one frame in a fresh process (start to PNG written)."""
    out_png = tmp / f"cold_{mode}.png"
    cmd = [
        sys.executable,
        "-m",
        "slimswap.cli",
        "swap",
        "-s",
        str(cfg.source),
        "-t",
        str(frame_png),
        "-o",
        str(out_png),
        "--mode",
        mode,
        "--device",
        cfg.device,
        "--overwrite",
    ]
    walls, rss = [], []
    for _ in range(cfg.plan["cold_runs"]):
        wall, rc, peak, _, err = run_measured(cmd)
        if rc != 0:
            raise UserError(
                f"cold-start run `slimswap swap --mode {mode}` failed (exit {rc}): {err.strip()[-800:]}"
            )
        walls.append(wall)
        rss.append(peak)
    return {
        "mode": mode,
        "device": cfg.device,
        "seconds_p50": float(np.median(walls)),
        "seconds_min": min(walls),
        "runs": len(walls),
        "peak_rss_mib": max(rss),
    }


def _child_main(argv: list[str]) -> int:
    """`python -m slimswap.evaluate.bench_e2e e2e SPEC_JSON`: one end-to-end run, JSON on stdout."""
    if len(argv) != 2 or argv[0] != "e2e":
        print("usage: python -m slimswap.evaluate.bench_e2e e2e SPEC_JSON", file=sys.stderr)
        return 2
    try:
        result = e2e_in_process(json.loads(argv[1]))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report.jsonable(result)))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
