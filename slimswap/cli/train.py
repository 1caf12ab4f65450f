"""`slimswap train`: the swap generators and the evaluation-only recognizer."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer

from slimswap.cli.common import console, fail, log_to_stderr
from slimswap.errors import UserError

app = typer.Typer(help="Train swap generators (GPU recommended).", no_args_is_help=True)


@app.command("teacher")
def train_teacher_cmd(
    data: list[Path] = typer.Option(
        [Path("data/shards/train_128.npz"), Path("data/shards/train_256.npz")],
        "--data",
        help="Training shards from `slimswap data build` (repeat; faces merged at --resolution).",
    ),
    out: Path = typer.Option(
        Path("runs/teacher"),
        "--out",
        help="Run folder: checkpoint, logs, sample grids (resumes if a checkpoint is there).",
    ),
    identity_weights: Path | None = typer.Option(
        None, "--identity-weights", help="Identity net safetensors (default: read dlib's .dat)."
    ),
    init_from: Path | None = typer.Option(
        None, "--init-from", help="Continue from a compact checkpoint folder (fresh optimisers)."
    ),
    export_compact: Path | None = typer.Option(
        None, "--export-compact", help="After training, write a compact fp16 checkpoint here."
    ),
    resolution: int = typer.Option(256, "--resolution", help="Crop side the generator works at."),
    student: bool = typer.Option(
        False, "--student", help="Train the lite (depthwise-separable) network directly."
    ),
    target_channels: int = typer.Option(
        0,
        "--target-channels",
        help="Channels the target may pass at 1/8 and 1/16 size (0: full width, as released).",
    ),
    pair_share: float = typer.Option(
        0.35, "--pair-share", help="Share of same-person (supervised) pairs in a batch."
    ),
    batch: int = typer.Option(32, "--batch", help="Pairs per step and process."),
    max_seconds: float = typer.Option(
        540.0, "--max-seconds", help="Stop (and checkpoint) after this much training time."
    ),
    max_steps: int = typer.Option(1_000_000, "--max-steps"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    compile: bool = typer.Option(
        False, "--compile/--no-compile", help="torch.compile the generator, critic, identity net."
    ),
    log_every: int = typer.Option(50, "--log-every"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train the warp-guided swap generator (resumable; works under torchrun on several GPUs)."""
    from slimswap.nets.warp_generator import SwapGeneratorConfig
    from slimswap.train.teacher import TrainConfig, train_teacher

    base = SwapGeneratorConfig.student(resolution) if student else SwapGeneratorConfig(resolution)
    cfg = TrainConfig(
        data=tuple(str(d) for d in data),
        out=str(out),
        identity_weights=str(identity_weights or ""),
        init_from=str(init_from or ""),
        batch=batch,
        max_seconds=max_seconds,
        max_steps=max_steps,
        pair_share=pair_share,
        device=device,
        compile=compile,
        log_every=log_every,
        seed=seed,
        model=dataclasses.replace(base, target_channels=target_channels),
    )
    log_to_stderr()
    try:
        last = train_teacher(cfg, export_compact=export_compact)
    except (UserError, FileNotFoundError) as err:
        fail(str(err))
    console.print(json.dumps(last, indent=1))


@app.command("recognizer")
def train_recognizer_cmd(
    data: Path = typer.Option(Path("data/shards/train_128.npz"), "--data"),
    test: Path = typer.Option(
        Path("data/shards/test_128.npz"), "--test", help="Held-out identities for the AUC."
    ),
    out: Path = typer.Option(Path("runs/recognizer"), "--out"),
    max_seconds: float = typer.Option(400.0, "--max-seconds"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
) -> None:
    """Train the evaluation-only recognizer (never used by a training loss)."""
    from slimswap.train.recognizer import RecognizerTrainConfig, train_recognizer

    cfg = RecognizerTrainConfig(
        data=str(data), eval_data=(str(test),), out=str(out), max_seconds=max_seconds, device=device
    )
    log_to_stderr()
    try:
        metrics = train_recognizer(cfg)
    except UserError as err:
        fail(str(err))
    console.print(json.dumps(metrics, indent=1))
