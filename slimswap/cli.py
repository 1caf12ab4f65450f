"""The `slimswap` command: thin wrappers that parse options, call one function, print.

Every UserError becomes one line on stderr and exit code 2; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from slimswap import __version__
from slimswap.errors import UserError

app = typer.Typer(
    help="slimswap: swap faces in images and videos, locally, with a small fast model.\n\n"
    "Example:  slimswap swap -s me.jpg -t clip.mp4 -o out.mp4",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Build the training data shards.", no_args_is_help=True)
train_app = typer.Typer(help="Train swap generators (GPU recommended).", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")
console = Console(stderr=True)


def fail(message: str) -> None:
    """One line on stderr, exit code 2: the contract for every user-fixable problem."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _version(value: bool) -> None:
    if value:
        print(f"slimswap {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """slimswap command line."""


@app.command()
def swap(
    source: Path = typer.Option(..., "--source", "-s", help="Image of the face to put in (one person, frontal is best)."),
    target: Path = typer.Option(..., "--target", "-t", help="Image (jpg/png/webp) or video (mp4/mov/mkv/webm) to change."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the result (same kind as the target)."),
    mode: str = typer.Option("auto", "--mode", "-m", help="Model: quality (teacher), lite (small, fast), classic (no learned weights), auto (lite if present)."),
    swapper: Optional[str] = typer.Option(None, "--swapper", help="Alias of --mode (e.g. --swapper classic)."),
    face_selector: str = typer.Option("one", "--face-selector", help="Which target faces: one (largest), many (all), reference (the person in --reference)."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="Photo of the person to replace, for --face-selector reference."),
    mask: str = typer.Option("box,area", "--mask", help="Blend mask: box, area (face outline) or box,area."),
    blend: str = typer.Option("feather", "--blend", help="Paste-back: feather (soft edge) or poisson (seamless clone)."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    detect_every: int = typer.Option(5, "--detect-every", help="Video: run the face detector every N frames (landmarks every frame)."),
    upsample: int = typer.Option(0, "--upsample", help="Detector upsampling for small faces (1 = ~4x slower, finds ~40 px faces)."),
    no_color: bool = typer.Option(False, "--no-color-correction", help="Keep the swap's own colours."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT if it exists."),
) -> None:
    """Swap the face from SOURCE into TARGET and write OUTPUT."""
    from slimswap.pipeline import SwapOptions, swap_file
    from slimswap.swap.registry import load_swapper

    try:
        if device not in ("cpu", "cuda"):
            raise UserError(f"--device must be cpu or cuda, got {device!r}")
        options = SwapOptions(
            face_selector=face_selector, reference=reference, masks=tuple(m.strip() for m in mask.split(",") if m.strip()),
            blend=blend, color_correction=not no_color, upsample=upsample, detect_every=detect_every,
            overwrite=overwrite, progress=sys.stderr.isatty(),
        )
        options.check()
        chosen = load_swapper(swapper or mode, device)
        report = swap_file(source, target, output, chosen, options)
    except UserError as err:
        fail(str(err))
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in sorted(report.stage_seconds.items(), key=lambda kv: -kv[1]))
    if report.kind == "video":
        console.print(
            f"swapped {report.frames_swapped}/{report.frames} frames ({report.frames_without_face} without a face, "
            f"passed through) with {report.swapper} in {report.seconds:.1f}s ({report.fps:.1f} fps); {stages}"
        )
    else:
        console.print(f"swapped {report.faces_swapped} face(s) with {report.swapper} in {report.seconds:.2f}s; {stages}")
    print(report.output)


@app.command()
def detect(
    image: Path = typer.Argument(..., help="Image to analyse."),
    draw: Optional[Path] = typer.Option(None, "--draw", help="Also write a copy with boxes and landmarks drawn."),
    embeddings: bool = typer.Option(False, "--embeddings", help="Include the 128-D identity descriptors."),
    upsample: int = typer.Option(0, "--upsample", help="Detector upsampling for small faces."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the --draw file if it exists."),
) -> None:
    """Find faces in IMAGE and print them as JSON (box, score, 5 keypoints, 68 landmarks)."""
    from slimswap import media
    from slimswap.face.analyser import FaceAnalyser

    try:
        if draw is not None:
            media.check_not_same(image, draw)
            media.check_output_path(draw, overwrite)
        frame = media.read_image(image)
        analyser = FaceAnalyser(upsample=upsample)
        faces = analyser.detect(frame)
        if embeddings:
            faces = [analyser.embed(frame, f) for f in faces]
        if draw is not None:
            from slimswap.face.draw import draw_faces

            media.write_image(draw, draw_faces(frame, faces))
    except UserError as err:
        fail(str(err))
    print(json.dumps({"image": str(image), "faces": [f.to_json() for f in faces]}, indent=1))


@app.command()
def models() -> None:
    """List the installed swap models with size, parameters, MACs, resolution and hash."""
    from rich.table import Table

    from slimswap.swap.registry import read_manifest

    try:
        entries = read_manifest()
    except UserError as err:
        fail(str(err))
    table = Table(title="slimswap models")
    for col in ("name", "mode", "backend", "file", "MiB", "params", "MACs", "res", "sha256"):
        table.add_column(col)
    table.add_row("classic", "classic", "numpy", "-", "0", "0", "-", "256", "-")
    for e in entries:
        size = e.path.stat().st_size / 2**20 if e.path.is_file() else float("nan")
        macs = e.raw.get("macs")
        table.add_row(
            e.name, e.mode, e.backend, e.file, f"{size:.2f}", f"{e.params/1e6:.2f}M",
            f"{macs/1e9:.2f}G" if macs else "-", str(e.resolution), e.sha256[:12],
        )
    Console().print(table)


@data_app.command("build")
def data_build(
    inputs: list[Path] = typer.Argument(None, help="Folders of <identity>/<image> (default: LFW + CelebA subset in ../shared/data)."),
    out: Path = typer.Option(Path("data/shards"), "--out", help="Output folder for shards and manifest.json."),
    workers: int = typer.Option(2, "--workers", help="Processes (one dlib analyser each)."),
) -> None:
    """Detect, align (128 and 256 px), embed and split faces into train/val/test shards."""
    from slimswap.train.data import build_dataset

    try:
        manifest = build_dataset(inputs or None, out, workers=workers)
    except UserError as err:
        fail(str(err))
    console.print(json.dumps(manifest.get("counts", {}), indent=1))
    print(out)


@train_app.command("teacher")
def train_teacher_cmd(
    data: Path = typer.Option(Path("data/shards/train_128.npz"), "--data", help="Training shard from `slimswap data build`."),
    out: Path = typer.Option(Path("runs/teacher"), "--out", help="Run folder: checkpoint, logs, sample grids (resumes if a checkpoint is there)."),
    identity_weights: Optional[Path] = typer.Option(None, "--identity-weights", help="Identity net safetensors (default: read dlib's .dat)."),
    batch: int = typer.Option(64, "--batch"),
    max_seconds: float = typer.Option(540.0, "--max-seconds", help="Stop (and checkpoint) after this much training time."),
    max_steps: int = typer.Option(1_000_000, "--max-steps"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    compile: bool = typer.Option(False, "--compile/--no-compile", help="torch.compile the generator and identity net."),
    base: int = typer.Option(64, "--base", help="Generator width at full resolution (tiny values for tests)."),
    deep: int = typer.Option(256, "--deep", help="Generator width at 32/16 px."),
    blocks: int = typer.Option(4, "--blocks", help="AdaIN residual blocks in the bottleneck."),
    landmark_pretrain: int = typer.Option(300, "--landmark-pretrain", help="Steps to pre-train the landmark critic."),
    log_every: int = typer.Option(50, "--log-every"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train the teacher swap generator (resumable; works under torchrun for several GPUs)."""
    from slimswap.nets.generator import TeacherConfig
    from slimswap.train.teacher import TrainConfig, train_teacher

    cfg = TrainConfig(
        data=str(data), out=str(out), identity_weights=str(identity_weights or ""), batch=batch,
        max_seconds=max_seconds, max_steps=max_steps, device=device, compile=compile,
        landmark_pretrain_steps=landmark_pretrain, log_every=log_every, seed=seed,
        model=TeacherConfig(base=base, deep=deep, n_blocks=blocks),
    )
    try:
        last = train_teacher(cfg)
    except UserError as err:
        fail(str(err))
    console.print(json.dumps(last, indent=1))


if __name__ == "__main__":
    app()
