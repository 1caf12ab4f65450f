"""`slimswap train`: the swap generators and the evaluation-only recognizer."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import typer

from slimswap.cli.common import console, fail, log_to_stderr, options_from
from slimswap.errors import UserError
from slimswap.options import cli

app = typer.Typer(help="Train swap generators (GPU recommended).", no_args_is_help=True)


TRAIN_SHARDS = (Path("data/shards/train_128.npz"), Path("data/shards/train_256.npz"))


@dataclass
class TrainRun:
    """The options of every command that trains a generator (`train teacher`, `compress
    distill`), declared once; `config` makes the TrainConfig they run."""

    data: tuple[Path, ...] = field(
        default=TRAIN_SHARDS,
        metadata=cli(
            "--data",
            help="Training shards from `slimswap data build` (repeat; faces merged at the "
            "model's resolution).",
            cli_type=list[Path],
            parse=tuple,
            show=list,
        ),
    )
    identity_weights: Path | None = field(
        default=None,
        metadata=cli(
            "--identity-weights",
            cli_type=Path | None,
            help="Identity net safetensors (default: read dlib's .dat).",
        ),
    )
    init_from: Path | None = field(
        default=None,
        metadata=cli(
            "--init-from",
            cli_type=Path | None,
            help="Continue from a compact checkpoint folder (fresh optimisers).",
        ),
    )
    export_compact: Path | None = field(
        default=None,
        metadata=cli(
            "--export-compact",
            cli_type=Path | None,
            help="After training, write a compact fp16 checkpoint here.",
        ),
    )
    batch: int = field(default=32, metadata=cli("--batch", help="Pairs per step and process."))
    max_seconds: float = field(
        default=540.0,
        metadata=cli("--max-seconds", help="Stop (and checkpoint) after this much training time."),
    )
    max_steps: int = field(
        default=1_000_000, metadata=cli("--max-steps", help="Stop after N steps.")
    )
    device: str = field(default="auto", metadata=cli("--device", help="auto, cpu or cuda."))
    compile: bool = field(
        default=False,
        metadata=cli(
            "--compile/--no-compile", help="torch.compile the generator, critic, identity net."
        ),
    )
    log_every: int = field(default=50, metadata=cli("--log-every", help="Log every N steps."))

    def config(self, out: Path, **more):
        """The TrainConfig of this run, writing to `out`; `more`: the command's own fields."""
        from slimswap.train.teacher import TrainConfig

        return TrainConfig(
            data=tuple(str(d) for d in self.data),
            out=str(out),
            identity_weights=str(self.identity_weights or ""),
            init_from=str(self.init_from or ""),
            batch=self.batch,
            max_seconds=self.max_seconds,
            max_steps=self.max_steps,
            device=self.device,
            compile=self.compile,
            log_every=self.log_every,
            **more,
        )


@app.command("teacher")
@options_from(TrainRun)
def train_teacher_cmd(
    out: Path = typer.Option(
        Path("runs/teacher"),
        "--out",
        help="Run folder: checkpoint, logs, sample grids (resumes if a checkpoint is there).",
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
    seed: int = typer.Option(0, "--seed"),
    settings: TrainRun | None = None,
) -> None:
    """Train the warp-guided swap generator (resumable; works under torchrun on several GPUs)."""
    from slimswap.nets.warp_generator import SwapGeneratorConfig
    from slimswap.train.teacher import train_teacher

    base = SwapGeneratorConfig.student(resolution) if student else SwapGeneratorConfig(resolution)
    model = dataclasses.replace(base, target_channels=target_channels)
    cfg = settings.config(out, pair_share=pair_share, seed=seed, model=model)
    log_to_stderr()
    try:
        last = train_teacher(cfg, export_compact=settings.export_compact)
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
