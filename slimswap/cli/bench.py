"""`slimswap bench`: speed and memory of every model and backend on this machine."""

from __future__ import annotations

from pathlib import Path

import typer

from slimswap.cli.common import console, fail
from slimswap.errors import UserError


def bench(
    modes: list[str] = typer.Option(
        [],
        "--mode",
        "-m",
        help="Modes to measure (repeat); default: every available model and backend.",
    ),
    device: str = typer.Option(
        "cpu",
        "--device",
        help="cpu or cuda (cuda adds fp16/bf16, torch.compile and CUDA-graph rows).",
    ),
    quick: bool = typer.Option(
        False, "--quick", help="Few repeats, small batch, bundled clip only (CI)."
    ),
    videos: list[Path] = typer.Option(
        [],
        "--video",
        help="Extra videos for the end-to-end rows (default in full runs: a ../shared talking head).",
    ),
    out: Path = typer.Option(
        Path("benchmarks/bench"), "--out", help="Folder for bench-<device>.{json,md,png}."
    ),
    batch: int = typer.Option(
        0, "--batch", help="The large batch for throughput (default 64, quick 8)."
    ),
    max_frames: int = typer.Option(
        0, "--max-frames", help="Cut each video to its first N frames (0: whole video)."
    ),
    compile: bool = typer.Option(
        True,
        "--compile/--no-compile",
        help="CUDA torch models: also measure torch.compile and CUDA graphs.",
    ),
    cold: bool = typer.Option(
        True, "--cold-start/--no-cold-start", help="Time a fresh `slimswap swap` process per mode."
    ),
) -> None:
    """Latency, throughput, load time, cold start, end-to-end fps per stage and peak memory."""
    from slimswap.evaluate.bench import BenchConfig
    from slimswap.evaluate.bench_run import run_bench
    from slimswap.evaluate.report import command_line

    cfg = BenchConfig(
        modes=tuple(modes),
        device=device,
        quick=quick,
        videos=tuple(videos),
        out=out,
        batch=batch,
        max_frames=max_frames,
        compile=compile,
        cold_start=cold,
    )
    try:
        _, paths = run_bench(
            cfg, command_line(), progress=lambda msg: console.print(f"[dim]{msg}[/]")
        )
    except UserError as err:
        fail(str(err))
    print(paths["md"].read_text().split("\n![")[0])
    print(paths["md"])


def bench_video(
    video: Path = typer.Argument(..., help="The video to run end to end (decode to encoded file)."),
    source: Path = typer.Option(
        Path("examples/grace_hopper.jpg"),
        "--source",
        "-s",
        help="Source face photo (or an .npz identity).",
    ),
    mode: str = typer.Option("lite", "--mode", "-m", help="quality, lite or a listed model name."),
    device: str = typer.Option(
        "cpu", "--device", help="cpu or cuda (the device frame path runs on either)."
    ),
    batch: int = typer.Option(16, "--batch", help="Frames per device batch."),
    precision: str = typer.Option("fp16", "--precision", help="fp32, fp16 or bf16 (torch models)."),
    repeat: int = typer.Option(1, "--repeat", help="Play a short clip this many times over."),
    clips: str = typer.Option(
        "1", "--clips", help="Comma list: copies of the video run at once (total fps)."
    ),
    paths: str = typer.Option(
        "reference,host,device",
        "--paths",
        help="Rows: reference (decode+encode), host (OpenCV), device (torch).",
    ),
    watermark: bool = typer.Option(
        True, "--watermark/--no-watermark", help="Embed the invisible marks."
    ),
    out: Path | None = typer.Option(None, "--out", help="Folder for e2e.json."),
) -> None:
    """End to end on one video: per-stage ms and fps of each frame path, against a plain
    decode + encode of the same video (the ratio says what the swap costs)."""
    from slimswap.evaluate.bench_frame_path import run
    from slimswap.evaluate.report import command_line

    try:
        counts = tuple(int(c) for c in clips.split(",") if c.strip().isdigit())
        if not counts or len(counts) != len(clips.split(",")) or min(counts) < 1:
            raise UserError(
                f"--clips takes a comma list of counts of 1 or more, e.g. 1,8; got {clips!r}"
            )
        rows = tuple(paths.split(","))
        if not set(rows) <= {"reference", "host", "device"}:
            raise UserError(f"--paths takes a comma list of reference, host, device; got {paths!r}")
        run(
            video, source, mode, device, batch, precision, repeat, counts, rows, watermark, out,
            command_line(),
        )  # fmt: skip
    except (UserError, ValueError) as err:
        fail(str(err))
