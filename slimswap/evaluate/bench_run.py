"""`slimswap bench`, the run: every row (evaluate/bench.py) measured as a swap model, end to
end on each video and from a cold start (bench_e2e.py), then written out (bench_report.py)."""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path

from slimswap.evaluate import report
from slimswap.evaluate.bench import (
    BUNDLED_CLIP,
    SHARED_VIDEO,
    BenchConfig,
    BenchInputs,
    BenchResult,
    bench_model,
    variants,
)
from slimswap.evaluate.bench_e2e import bench_video, cold_start, trim_video
from slimswap.evaluate.bench_report import write_bench_report
from slimswap.paths import shared_data_dir


def bench_videos(cfg: BenchConfig) -> list[tuple[str, Path]]:
    """The bundled clip, then --video files (or, in full runs, one ../shared talking head)."""
    videos = [("clip.mp4", BUNDLED_CLIP)]
    extra = list(cfg.videos)
    root = shared_data_dir()
    if not extra and not cfg.quick and root is not None and (root / SHARED_VIDEO).is_file():
        extra = [root / SHARED_VIDEO]
    return videos + [(Path(p).name, Path(p)) for p in extra]


def run_bench(cfg: BenchConfig, command: str, progress=None) -> tuple[BenchResult, dict[str, Path]]:
    """Measure every variant and write JSON, markdown and charts into cfg.out."""
    say = progress or (lambda msg: None)
    cfg.check()
    rows = variants(cfg)
    videos = bench_videos(cfg)
    env = report.environment(cfg.device)
    conf = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    conf.update(plan=cfg.plan, large_batch=cfg.large_batch, videos=[str(p) for p in cfg.videos])
    result = BenchResult(env, command, conf)
    with tempfile.TemporaryDirectory(prefix="slimswap-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if cfg.max_frames:
            videos = [
                (n, trim_video(p, tmp / f"trim_{i}.mp4", cfg.max_frames))
                for i, (n, p) in enumerate(videos)
            ]
        inputs = BenchInputs(cfg.source, BUNDLED_CLIP, cfg.plan["crop_frames"])
        for v in rows:
            say(f"swap model: {v.name}")
            row = bench_model(v, cfg, inputs)
            row["videos"] = []
            for name, path in videos:
                say(f"end to end: {v.name} on {name}")
                row["videos"].append(bench_video(v, path, name, cfg, tmp))
            result.models.append(row)
        if cfg.cold_start:
            from slimswap import media

            frame_png = tmp / "first_frame.png"
            media.write_image(frame_png, next(media.read_frames(BUNDLED_CLIP, 1))[0])
            for mode in dict.fromkeys(v.mode for v in rows):
                say(f"cold start: {mode}")
                result.cold_start.append(cold_start(mode, cfg, frame_png, tmp))
    return result, write_bench_report(result, cfg)
