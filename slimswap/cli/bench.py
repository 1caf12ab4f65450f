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
