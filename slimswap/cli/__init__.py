"""The `slimswap` command: thin wrappers that parse options, call one function, print.

Every UserError becomes one line on stderr and exit code 2; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import logging
import sys
import time
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console

from slimswap import __version__
from slimswap.errors import UserError
from slimswap.options import JobSettings, LiveSettings

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
compress_app = typer.Typer(
    help="Shrink a generator: sensitivity, pruning, distillation, quantization, export.",
    no_args_is_help=True,
)
app.add_typer(compress_app, name="compress")
eval_app = typer.Typer(help="Measure swap quality on held-out identities.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")
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
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """slimswap command line."""


def options_from(cls):
    """Give a command one option per command-line field of dataclass `cls` and call it with
    `settings=cls(...)`: the flags, help and defaults are declared once, on the dataclass
    (pipeline.option), and `swap`, `batch` and the job files all derive from it."""
    hints = typing.get_type_hints(cls)
    own = set(cls.__annotations__)
    cli_fields = sorted(
        (f for f in dataclasses.fields(cls) if "cli" in f.metadata), key=lambda f: f.name not in own
    )

    def decorate(command):
        signature = inspect.signature(command)
        base = [p for p in signature.parameters.values() if p.name != "settings"]
        extra = []
        for f in cli_fields:
            meta = f.metadata["cli"]
            default = meta["show"](f.default) if meta["show"] else f.default
            extra.append(
                inspect.Parameter(
                    f.name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=typer.Option(default, *meta["flags"], help=meta["help"]),
                    annotation=meta["cli_type"] or hints[f.name],
                )
            )

        @functools.wraps(command)
        def wrapper(**kwargs):
            values = {}
            for f in cli_fields:
                parse = f.metadata["cli"]["parse"]
                value = kwargs.pop(f.name)
                values[f.name] = parse(value) if parse else value
            return command(settings=cls(**values), **kwargs)

        wrapper.__signature__ = signature.replace(parameters=base + extra)
        wrapper.__annotations__ = {p.name: p.annotation for p in base + extra}
        return wrapper

    return decorate


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr, driven by the pipeline's on_progress(done, total)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("[bold]swapping"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]:.1f} fps"),
        TimeRemainingColumn(),
    ]
    start = time.perf_counter()
    with Progress(*columns, console=console, disable=not enabled, transient=False) as bar:
        task = bar.add_task("swap", total=None, fps=0.0)

        def update(done: int, total: int) -> None:
            fps = done / max(time.perf_counter() - start, 1e-9)
            bar.update(task, completed=done, total=total or None, fps=fps)

        yield update


@app.command()
@options_from(JobSettings)
def swap(
    source: Path = typer.Option(
        ..., "--source", "-s", help="Image of the face to put in (one person, frontal is best)."
    ),
    target: Path = typer.Option(
        ..., "--target", "-t", help="Image (jpg/png/webp) or video (mp4/mov/mkv/webm) to change."
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Where to write the result (same kind as the target)."
    ),
    settings: JobSettings | None = None,
) -> None:
    """Swap the face from SOURCE into TARGET and write OUTPUT."""
    from slimswap.face.analyser import FaceAnalyser
    from slimswap.pipeline import swap_file
    from slimswap.swap.registry import load_swapper

    try:
        settings.check()
        chosen = load_swapper(settings.mode, settings.device)
        # the MediaPipe nets follow --device (torch on CUDA); dlib runs on the CPU only
        analyser = FaceAnalyser(
            upsample=settings.upsample,
            detector=settings.detector,
            device=settings.device if settings.detector == "mediapipe" else "cpu",
        )
        with progress_bar(sys.stderr.isatty()) as on_progress:
            report = swap_file(
                source,
                target,
                output,
                chosen,
                settings.options(),
                analyser,
                on_progress=on_progress,
            )
    except UserError as err:
        fail(str(err))
    stages = ", ".join(
        f"{k} {v:.2f}s" for k, v in sorted(report.stage_seconds.items(), key=lambda kv: -kv[1])
    )
    if report.kind == "video":
        console.print(
            f"swapped {report.frames_swapped}/{report.frames} frames ({report.frames_without_face} without a face, "
            f"passed through) with {report.swapper} in {report.seconds:.1f}s ({report.fps:.1f} fps); {stages}"
        )
    else:
        console.print(
            f"swapped {report.faces_swapped} face(s) with {report.swapper} in {report.seconds:.2f}s; {stages}"
        )
    print(report.output)


@app.command()
def detect(
    image: Path = typer.Argument(..., help="Image to analyse."),
    draw: Path | None = typer.Option(
        None, "--draw", help="Also write a copy with boxes and landmarks drawn."
    ),
    embeddings: bool = typer.Option(
        False, "--embeddings", help="Include the 128-D identity descriptors."
    ),
    upsample: int = typer.Option(0, "--upsample", help="Detector upsampling for small faces."),
    detector: str = typer.Option(
        "mediapipe", "--detector", help="Face analysis: mediapipe (default) or dlib."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace the --draw file if it exists."
    ),
) -> None:
    """Find faces in IMAGE and print them as JSON (box, score, 5 keypoints, 68 landmarks)."""
    from slimswap import media
    from slimswap.face.analyser import FaceAnalyser

    try:
        if draw is not None:
            media.check_not_same(image, draw)
            media.check_output_path(draw, overwrite)
        frame = media.read_image(image)
        analyser = FaceAnalyser(upsample=upsample, detector=detector)
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
    for col in (
        "name",
        "mode",
        "backend",
        "precision",
        "file",
        "MiB",
        "params",
        "MACs",
        "res",
        "sha256",
    ):
        table.add_column(col)
    table.add_row("classic", "classic", "numpy", "fp32", "-", "0", "0", "-", "256", "-")
    for e in entries:
        size = e.path.stat().st_size / 2**20 if e.path.is_file() else float("nan")
        table.add_row(
            e.name,
            e.mode,
            e.backend,
            e.precision,
            e.file,
            f"{size:.2f}",
            f"{e.params / 1e6:.2f}M",
            f"{e.macs / 1e9:.2f}G" if e.macs else "-",
            str(e.resolution),
            e.sha256[:12],
        )
    Console().print(table)


def log_to_stderr() -> None:
    """Progress lines of long runs (data build, training) on stderr, with the time: the
    process's logging is the command's to set, never the library's."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")


def _name_equals_dir(text: str) -> tuple[str, Path]:
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise UserError(
            f"--extra-test takes NAME=DIR (e.g. deepface=../shared/data/deepface_testset), got {text!r}"
        )
    return name, Path(folder)


@data_app.command("build")
def data_build(
    inputs: list[Path] = typer.Argument(
        None,
        help="Training folders of <identity>/<image>, split by identity into train/val/test (default: LFW + CelebA subset in ../shared/data, deepface as extra test set).",
    ),
    extra_test: list[str] = typer.Option(
        [],
        "--extra-test",
        help="NAME=DIR: a folder of <identity>/<image> that becomes test shard NAME of its own (repeatable).",
    ),
    videos: Path | None = typer.Option(
        None,
        "--videos",
        help="Folder of talking-head clips: each becomes one identity of evenly spaced frames; the held-out clips become the extra test set `videos`.",
    ),
    out: Path = typer.Option(
        Path("data/shards"),
        "--out",
        help="Output folder for shards, manifest.json and the analysis cache.",
    ),
    workers: int | None = typer.Option(
        None, "--workers", help="Processes, one dlib analyser each (default 2)."
    ),
    codec: str | None = typer.Option(None, "--codec", help="Crop encoding: webp (default) or jpg."),
    quality: int | None = typer.Option(
        None, "--quality", help="Crop encoding quality, 1-100 (default 88)."
    ),
    test_identities: int | None = typer.Option(
        None,
        "--test-identities",
        help="Identities held out for test, with 3+ faces each (default 120).",
    ),
    val_identities: int | None = typer.Option(
        None,
        "--val-identities",
        help="Identities held out for validation, with 2+ faces each (default 50).",
    ),
) -> None:
    """Detect, align (128 and 256 px), embed and split faces into train/val/test shards."""
    from slimswap.train.build import BuildConfig, build_dataset, default_inputs

    log_to_stderr()
    try:
        extra = dict(_name_equals_dir(e) for e in extra_test)
        train = list(inputs or [])
        if not train and not extra:
            train, extra = default_inputs()
        if videos is not None:
            train, extra = _with_video_frames(videos, out, train, extra)
        given = {
            "workers": workers,
            "codec": codec,
            "quality": quality,
            "test_identities": test_identities,
            "val_identities": val_identities,
        }
        config = BuildConfig(**{k: v for k, v in given.items() if v is not None})
        result = build_dataset(train, out, extra, config, progress=sys.stderr.isatty())
    except UserError as err:
        fail(str(err))
    m = result.manifest
    console.print_json(
        json.dumps(
            {"totals": m["totals"], "failure_counts": m["failure_counts"], "splits": m["splits"]}
        )
    )
    console.print(
        f"{result.seconds:.0f} s ({result.analysed} images analysed, {result.cached} from the cache)"
    )
    print(out)


def _build_frames(shards_dir: Path) -> Path:
    """The held-out clip frames `data build --videos` wrote beside its shards.

    Older builds kept them in <shards>/../frames; either is used, the newer first.
    """
    for folder in (shards_dir / "video_frames", shards_dir.parent / "frames"):
        if (folder / "video_held_out").is_dir():
            return folder / "video_held_out"
    return shards_dir / "video_frames" / "video_held_out"


def _with_video_frames(
    videos: Path, out: Path, train: list[Path], extra: dict[str, Path]
) -> tuple[list[Path], dict[str, Path]]:
    """Training folders and extra test sets with the clips in `videos` added as frame folders."""
    from slimswap.media import VIDEO_EXTS
    from slimswap.train.video_frames import extract_clips

    clips = (
        sorted(p for p in videos.iterdir() if p.suffix.lower() in VIDEO_EXTS)
        if videos.is_dir()
        else []
    )
    if not clips:
        raise UserError(
            f"--videos {videos}: no video files ({', '.join(VIDEO_EXTS)}) in that folder"
        )
    if "videos" in extra:
        raise UserError(
            "--extra-test videos=... clashes with --videos, which adds the test set `videos`"
        )
    train_frames, held_frames = extract_clips(clips, out / "video_frames")
    train = train + ([train_frames] if train_frames.is_dir() else [])
    extra = {**extra, **({"videos": held_frames} if held_frames.is_dir() else {})}
    return train, extra


@train_app.command("teacher")
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


@train_app.command("recognizer")
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


VAL_FACES = [Path("data/shards/val_128.npz"), Path("data/shards/val_256.npz")]
TEACHER = Path("models/teacher_256.safetensors")  # the released quality model
FACES_HELP = "Shards of real faces (repeat --faces); default: the val split."


@compress_app.command("sensitivity")
def compress_sensitivity(
    model: Path = typer.Option(TEACHER, "--model", help="Generator weights (safetensors)."),
    faces: list[Path] = typer.Option(VAL_FACES, "--faces", help=FACES_HELP),
    batches: int = typer.Option(2, "--batches"),
    batch: int = typer.Option(4, "--batch"),
    protect_below: float = typer.Option(
        25.0, "--protect-below-db", help="Protect layers whose 30% cut drops PSNR below this."
    ),
    out: Path = typer.Option(Path("benchmarks/compress"), "--out"),
) -> None:
    """Per-layer Taylor saliency and the PSNR drop of pruning each layer by 10/30/50 %."""
    import torch

    from slimswap.compress import sensitivity
    from slimswap.compress.data import face_batches
    from slimswap.evaluate.report import command_line
    from slimswap.swap.weights import load_generator

    torch.set_num_threads(2)
    try:
        gen = load_generator(model)
        data = face_batches(faces, batches, batch, int(gen.config.resolution))
        start = time.time()
        rows = sensitivity.analyse(gen, data)
        protected = sensitivity.protected_layers(rows, protect_below)
        header = (
            f"Command: `{command_line()}` ({time.time() - start:.0f} s on CPU). Model "
            f"{model} at {gen.config.resolution} px; {sum(len(b) for b in data)} real faces "
            f"of {', '.join(map(str, faces))}, each with another person's warped face as guide "
            "and that person's identity; PSNR of the pruned model's swaps against the unpruned "
            "model's inside the face region. Saliency from a same-person reconstruction loss. "
            f"A layer is protected when its 30 % cut falls below {protect_below} dB. The last "
            "column lists the layers torch-pruning cuts together with it (concatenated skips, "
            "residual stream, AdaIN gamma/beta pairs).\n\n"
        )
        sensitivity.save_report(rows, protected, out, header)
    except UserError as err:
        fail(str(err))
    Console().print(sensitivity.markdown(rows, protected))
    print(out / "sensitivity.md")


@compress_app.command("prune")
def compress_prune(
    model: Path = typer.Option(TEACHER, "--model"),
    faces: list[Path] = typer.Option(VAL_FACES, "--faces", help=FACES_HELP),
    target: float = typer.Option(
        0.5, "--target", help="Stop when MACs (or params) are at most this share of the original."
    ),
    metric: str = typer.Option("macs", "--metric", help="macs or params."),
    finetune_steps: int = typer.Option(
        20, "--finetune-steps", help="Distillation steps after each pruning step."
    ),
    batches: int = typer.Option(4, "--batches"),
    batch: int = typer.Option(4, "--batch"),
    sensitivity_json: Path | None = typer.Option(
        None, "--sensitivity", help="sensitivity.json whose protected layers stay whole."
    ),
    protect_below: float = typer.Option(25.0, "--protect-below-db"),
    out: Path = typer.Option(
        Path("runs/pruned"), "--out", help="Folder for pruned.pt, pruned_fp32.onnx and prune.md."
    ),
) -> None:
    """Iterative structured pruning (torch-pruning, Taylor), <=10 % of channels a step, each fine-tuned."""
    import torch

    from slimswap.compress.data import face_batches
    from slimswap.compress.export import to_onnx
    from slimswap.compress.prune import prune_iteratively
    from slimswap.evaluate.report import command_line
    from slimswap.swap.weights import load_generator

    try:
        if metric not in ("macs", "params"):
            raise UserError("--metric must be macs or params")
        protected: list[str] = []
        if sensitivity_json is not None:
            rows = json.loads(sensitivity_json.read_text())
            protected = [r["layer"] for r in rows if r["psnr_db"].get("0.3", 99) < protect_below]
        gen = load_generator(model)
        result = prune_iteratively(
            gen,
            face_batches(faces, batches, batch, int(gen.config.resolution)),
            target_ratio=target,
            metric=metric,
            protected=protected,
            finetune_steps=finetune_steps,
            on_step=lambda r: console.print(
                f"step {r.step}: MACs {r.macs_ratio:.3f}, params {r.params_ratio:.3f}, "
                f"fine-tune L1 {r.finetune_l1:.4f}"
            ),
        )
        out.mkdir(parents=True, exist_ok=True)
        torch.save(result.model, out / "pruned.pt")
        to_onnx(result.model, out / "pruned_fp32.onnx")
        lines = ["| step | MACs ratio | params ratio | fine-tune L1 |", "|---|---|---|---|"]
        lines += [
            f"| {r.step} | {r.macs_ratio:.3f} | {r.params_ratio:.3f} | {r.finetune_l1:.4f} |"
            for r in result.steps
        ]
        (out / "prune.md").write_text(
            f"# Pruning {model}\n\nCommand: `{command_line()}`\n\n"
            f"protected: {', '.join(protected) or 'none'} (plus the 4-channel `out` head and "
            "any attention block: see slimswap/compress/sensitivity.py)\n\n"
            f"MACs {result.base_macs / 1e9:.3f}G -> {result.macs / 1e9:.3f}G, params "
            f"{result.base_params / 1e6:.2f}M -> {result.params / 1e6:.2f}M\n\n"
            + "\n".join(lines)
            + "\n"
        )
    except UserError as err:
        fail(str(err))
    print(out / "pruned_fp32.onnx")


@compress_app.command("export")
def compress_export(
    model: Path = typer.Option(..., "--model", help="Generator weights (safetensors)."),
    name: str = typer.Option(..., "--name", help="File stem, e.g. lite_256."),
    out: Path = typer.Option(Path("models"), "--out"),
    faces: list[Path] = typer.Option(
        VAL_FACES, "--faces", help="Real faces for INT8 calibration and the checks (val split)."
    ),
    n_calib: int = typer.Option(128, "--calibration-faces"),
    n_check: int = typer.Option(32, "--check-faces"),
    release: bool = typer.Option(
        False,
        "--release",
        help="Also list the three files in models/MANIFEST (hash, size, precision, the torch "
        "model's provenance); needs --out to be the models folder.",
    ),
    metrics_json: Path | None = typer.Option(
        None,
        "--metrics",
        help="With --release: compression.json of `compress report`, whose rows for these "
        "files go into their manifest metrics.",
    ),
) -> None:
    """ONNX fp32 + fp16 + mixed-precision INT8 (convs only), each validated against torch."""
    import torch

    from slimswap.compress.lite import export_all
    from slimswap.compress.release import export_metrics, release_exports
    from slimswap.evaluate.report import command_line
    from slimswap.files import atomic_write
    from slimswap.paths import models_dir
    from slimswap.swap.weights import load_generator

    torch.set_num_threads(2)
    try:
        if release and out.resolve() != models_dir().resolve():
            raise UserError(f"--release lists files of {models_dir()}; pass --out {models_dir()}")
        report = export_all(load_generator(model), name, out, faces, n_calib, n_check)
        with atomic_write(out / f"{name}_export.json") as tmp:
            tmp.write_text(json.dumps(report, indent=1))
        if release:
            release_exports(model, name, report, command_line(), export_metrics(metrics_json, name))
    except UserError as err:
        fail(str(err))
    Console().print_json(json.dumps({k: v for k, v in report.items() if k != "excluded_nodes"}))


@compress_app.command("int8-sensitivity")
def compress_int8_sensitivity(
    model: Path = typer.Option(
        Path("models/lite_256.safetensors"), "--model", help="Generator weights (safetensors)."
    ),
    faces: list[Path] = typer.Option(VAL_FACES, "--faces", help=FACES_HELP),
    n_calib: int = typer.Option(64, "--calibration-faces"),
    n_check: int = typer.Option(16, "--check-faces"),
    target_db: float = typer.Option(
        45.0, "--target-db", help="Keep Convs float until INT8 vs fp32 face PSNR reaches this."
    ),
    max_float: int = typer.Option(16, "--max-float"),
    out: Path = typer.Option(Path("benchmarks/compress"), "--out"),
) -> None:
    """Which Convs must stay float in INT8: each quantized alone, then a greedy sweep."""
    import torch

    from slimswap.compress import export, quantize
    from slimswap.compress.data import face_inputs, split
    from slimswap.evaluate.report import command_line
    from slimswap.files import atomic_write
    from slimswap.swap.weights import load_generator

    torch.set_num_threads(2)
    try:
        gen = load_generator(model)
        calib, check = split(
            face_inputs(faces, n_calib + n_check, int(gen.config.resolution), seed=1), n_calib
        )
        out.mkdir(parents=True, exist_ok=True)
        fp32 = export.to_onnx(gen, out / ".int8_sensitivity_fp32.onnx")
        start = time.time()
        try:
            costs, steps = quantize.node_sensitivity(
                fp32, calib, check, target_db=target_db, max_float=max_float
            )
        finally:
            fp32.unlink(missing_ok=True)
        chosen = sorted({quantize.conv_part(n) for n in steps[-1].float_nodes})
        header = (
            f"Command: `{command_line()}` ({time.time() - start:.0f} s on CPU). Model {model}; "
            f"{len(calib['target'])} calibration and {len(check['target'])} check faces of "
            f"{', '.join(map(str, faces))} (disjoint), ONNX Runtime static QDQ as "
            "`quantize_int8` makes it (per-channel 7-bit weights, uint8 activations, percentile "
            "calibration). PSNR of the INT8 swaps against the fp32 graph's inside the face "
            f"region. Target {target_db} dB; float Conv fragments chosen: "
            f"{', '.join(f'`{c}`' for c in chosen) or 'none'}.\n\n"
        )
        with atomic_write(out / "int8_sensitivity.md") as tmp:
            tmp.write_text(quantize.sensitivity_markdown(costs, steps, header))
        with atomic_write(out / "int8_sensitivity.json") as tmp:
            tmp.write_text(
                json.dumps(
                    {
                        "per_node": [dataclasses.asdict(c) for c in costs],
                        "sweep": [dataclasses.asdict(s) for s in steps],
                        "float_conv_parts": chosen,
                    },
                    indent=1,
                )
            )
    except UserError as err:
        fail(str(err))
    print(out / "int8_sensitivity.md")


@compress_app.command("report")
def compress_report(
    teacher: Path = typer.Option(TEACHER, "--teacher"),
    student: Path = typer.Option(Path("models/lite_256.safetensors"), "--student"),
    onnx: list[str] = typer.Option(
        [
            "student=models/lite_256_fp32.onnx",
            "student=models/lite_256_fp16.onnx",
            "student=models/lite_256_int8.onnx",
        ],
        "--onnx",
        help="TWIN=FILE.onnx: an export of the teacher, student or pruned model (repeat).",
    ),
    pruned: Path | None = typer.Option(
        None, "--pruned", help="pruned.pt from `compress prune` (only once it is fine-tuned)."
    ),
    faces: list[Path] = typer.Option(VAL_FACES, "--faces", help=FACES_HELP),
    n_faces: int = typer.Option(64, "--n-faces"),
    seconds: float = typer.Option(20.0, "--seconds", help="Timing budget per model."),
    out: Path = typer.Option(Path("benchmarks/compress"), "--out"),
) -> None:
    """Params, MACs, size, CPU latency and PSNR vs teacher for the teacher, student and exports."""
    from slimswap.compress.data import face_inputs
    from slimswap.compress.report import Candidate, build_rows, markdown, save
    from slimswap.evaluate.report import command_line
    from slimswap.swap.weights import read_metadata

    try:
        cands = [Candidate("teacher", teacher), Candidate("student", student)]
        if pruned is not None:
            cands.append(Candidate("pruned", pruned))
        for text in onnx:
            twin, sep, file = text.partition("=")
            if not sep or twin not in {c.name for c in cands}:
                raise UserError(
                    f"--onnx takes TWIN=FILE with TWIN one of teacher, student, pruned; got {text!r}"
                )
            path = Path(file)
            cands.append(Candidate(f"{twin} {path.stem.rsplit('_', 1)[-1]}", path, twin))
        for c in cands:
            if not c.path.is_file():
                raise UserError(f"model file not found: {c.path}")
        teacher_res = int(read_metadata(teacher)["config"]["resolution"])
        inputs = face_inputs(faces, n_faces, teacher_res, seed=2)
        source = f"{', '.join(map(str, faces))}, seed 2"
        rows, context = build_rows(cands, inputs, source, seconds)
        path = save(rows, context, out, command_line())
    except UserError as err:
        fail(str(err))
    Console().print(markdown(rows))
    print(path)


@compress_app.command("distill")
def compress_distill(
    teacher: Path = typer.Option(
        TEACHER,
        "--teacher",
        help="Teacher weights (safetensors with config).",
    ),
    data: list[Path] = typer.Option(
        [Path("data/shards/train_128.npz"), Path("data/shards/train_256.npz")], "--data"
    ),
    out: Path = typer.Option(
        Path("runs/student"), "--out", help="Run folder (resumes if a checkpoint is there)."
    ),
    critic_from: Path | None = typer.Option(
        None,
        "--critic-from",
        help="Folder holding the teacher run's D.safetensors, to start the discriminator from.",
    ),
    identity_weights: Path | None = typer.Option(None, "--identity-weights"),
    init_from: Path | None = typer.Option(
        None, "--init-from", help="Continue from a compact student checkpoint."
    ),
    export_compact: Path | None = typer.Option(None, "--export-compact"),
    batch: int = typer.Option(32, "--batch"),
    max_seconds: float = typer.Option(540.0, "--max-seconds"),
    max_steps: int = typer.Option(1_000_000, "--max-steps"),
    device: str = typer.Option("auto", "--device"),
    compile: bool = typer.Option(False, "--compile/--no-compile"),
    log_every: int = typer.Option(50, "--log-every"),
) -> None:
    """Distil the teacher into the lite student (depthwise-separable, attention fusion)."""
    from slimswap.nets.warp_generator import SwapGeneratorConfig
    from slimswap.swap.weights import read_metadata
    from slimswap.train.distill import DistillConfig, distill_student
    from slimswap.train.teacher import TrainConfig

    cfg = TrainConfig(
        data=tuple(str(p) for p in data),
        out=str(out),
        identity_weights=str(identity_weights or ""),
        init_from=str(init_from or ""),
        batch=batch,
        max_seconds=max_seconds,
        max_steps=max_steps,
        device=device,
        compile=compile,
        log_every=log_every,
    )
    log_to_stderr()
    try:
        if not teacher.is_file():
            raise UserError(f"teacher weights not found: {teacher}")
        resolution = int(read_metadata(teacher)["config"]["resolution"])
        distill = DistillConfig(
            teacher=str(teacher),
            critic_from=str(critic_from or ""),
            student=SwapGeneratorConfig.student(resolution),
        )
        last = distill_student(cfg, distill, export_compact)
    except UserError as err:
        fail(str(err))
    console.print(json.dumps(last, indent=1))


@eval_app.command("swapper")
def eval_swapper(
    modes: list[str] = typer.Option(
        ["classic", "quality", "lite"],
        "--mode",
        "-m",
        help="Models to evaluate (repeat the option): a mode or an .onnx file.",
    ),
    sets: str | None = typer.Option(
        None,
        "--sets",
        help="Comma list of held-out sets: test, deepface, video (default: all; --quick: deepface,video).",
    ),
    shards: Path | None = typer.Option(
        None,
        "--shards",
        help="Folder of the data build's shards (default: data/shards in the repo).",
    ),
    frames: Path | None = typer.Option(
        None,
        "--frames",
        help="Held-out clip frames (default: the data build's <shards>/video_frames/video_held_out, else extracted from ../shared/data/videos).",
    ),
    pairs: int = typer.Option(
        100, "--pairs", help="Different-person (source, target) pairs per photo set."
    ),
    same_pairs: int = typer.Option(
        50, "--same-pairs", help="Same-person pairs per set (cross-photo reconstruction)."
    ),
    self_pairs: int = typer.Option(50, "--self", help="Crop-level self-swaps per set."),
    grid: int = typer.Option(16, "--grid", help="Rows of eval_grid.png (different-person pairs)."),
    max_side: int = typer.Option(
        1600, "--max-side", help="Shrink larger photos to this long side first (time)."
    ),
    recognizer: Path | None = typer.Option(
        None,
        "--recognizer",
        help="Evaluation recognizer weights (default: models/MANIFEST's eval_recognizer, hash-checked).",
    ),
    quick: bool = typer.Option(
        False, "--quick", help="A few real faces (CI): 4 pairs, 2 same-person pairs, one clip."
    ),
    resume: bool = typer.Option(
        True,
        "--resume/--no-resume",
        help="Reuse per-pair scores cached in <out>/cache by an earlier run.",
    ),
    out: Path = typer.Option(
        Path("benchmarks/eval"),
        "--out",
        help="Folder for eval.md, eval.json, eval_run.json, eval_grid.png.",
    ),
    device: str = typer.Option("cpu", "--device"),
    seed: int = typer.Option(0, "--seed"),
    exclude_seen: Path | None = typer.Option(
        None,
        "--exclude-seen",
        help="Training shard of the evaluated models: drop any test identity it contains.",
    ),
) -> None:
    """Full-pipeline swap quality at native size: sharpness, recognizer identity, colour, reconstruction."""
    from slimswap.evaluate import swap_eval
    from slimswap.evaluate.recognition import load_eval_recognizer
    from slimswap.evaluate.report import command_line, environment
    from slimswap.paths import REPO_ROOT, shared_data_dir
    from slimswap.swap.registry import load_swapper

    try:
        if min(pairs, same_pairs, self_pairs, grid) < 0:
            raise UserError("--pairs, --same-pairs, --self and --grid must be 0 or more")
        cfg = swap_eval.EvalConfig(
            pairs, same_pairs, self_pairs, grid, max_side, seed=seed, resume=resume
        )
        cfg = swap_eval.quick_config(cfg) if quick else cfg
        judge = load_eval_recognizer(recognizer, device)
        root = shared_data_dir()
        if root is None:
            raise UserError(
                "evaluation needs the face data in ../shared/data (or set SLIMSWAP_SHARED)"
            )
        swappers = []
        for mode in dict.fromkeys(modes):  # a mode, a listed model or any exported file
            swappers.append(load_swapper(mode, device))
        names = [
            n.strip()
            for n in (sets or ("deepface,video" if quick else "test,deepface,video")).split(",")
            if n.strip()
        ]
        shards_dir = shards or REPO_ROOT / "data" / "shards"
        held = swap_eval.load_sets(
            names,
            shards_dir,
            root,
            frames or _build_frames(shards_dir),
            out / "cache",
            quick=quick,
            exclude_seen=exclude_seen,
        )
        run = swap_eval.evaluate_swappers(
            swappers,
            held,
            judge,
            cfg,
            cache_dir=out / "cache",
            progress=lambda msg: console.print(f"[dim]{msg}[/]"),
        )
        config = {
            "pairs": cfg.pairs,
            "same_pairs": cfg.same_pairs,
            "self": cfg.self_swaps,
            "grid": cfg.grid,
            "max_side": cfg.max_side,
            "min_gap_s": cfg.min_gap_s,
            "seed": seed,
            "sets": names,
            "quick": quick,
        }
        paths = swap_eval.save_report(run, out, command_line(), environment(device), config, judge)
    except UserError as err:
        fail(str(err))
    print(paths["md"].read_text().split("## Picture")[0])
    print(paths["md"])


# ------------------------------------------------------------------ benchmarks, robustness, temporal (issue 6)


def _swappers_for(modes: list[str], device: str) -> list:
    """One swapper per mode; no --mode means classic plus every installed learned mode."""
    from slimswap.swap.registry import available_modes, load_swapper

    wanted = modes or ["classic", *available_modes()]
    return [load_swapper(m, device) for m in dict.fromkeys(wanted)]


@app.command()
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
    from slimswap.evaluate.bench import BenchConfig, run_bench
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


@eval_app.command("robustness")
def eval_robustness(
    modes: list[str] = typer.Option(
        [],
        "--mode",
        "-m",
        help="Models to evaluate (repeat); default: classic and every installed mode.",
    ),
    shard: Path = typer.Option(
        Path("data/shards/test_128.npz"),
        "--shard",
        help="Held-out test shard (its photos are read from ../shared/data).",
    ),
    faces: Path | None = typer.Option(
        None,
        "--faces",
        help="Instead of a shard: a folder of <identity>/<photo> analysed on the fly.",
    ),
    max_photos: int = typer.Option(
        40, "--max-photos", help="With --faces: photos to analyse (round-robin over identities)."
    ),
    pairs: int = typer.Option(100, "--pairs", help="(source, target) pairs per subset."),
    upsample: int = typer.Option(
        0,
        "--upsample",
        help="Detector upsampling for the targets (the swap command's default is 0).",
    ),
    out: Path = typer.Option(
        Path("benchmarks/eval"),
        "--out",
        help="Folder for robustness.{json,md,png} and robustness_grid.png.",
    ),
    device: str = typer.Option("cpu", "--device"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Occlusion, profile, low-light and small-face subsets: detection rate, ID distance, NME."""
    from dataclasses import asdict

    from slimswap.evaluate import robustness
    from slimswap.evaluate.report import command_line, environment
    from slimswap.face.analyser import FaceAnalyser
    from slimswap.paths import shared_data_dir

    try:
        if pairs < 1:
            raise UserError("--pairs must be at least 1")
        analyser = FaceAnalyser(upsample=upsample, detector="dlib")  # the report's judge is dlib
        if faces is not None:
            face_set = robustness.face_set_from_folder(faces, analyser, max_photos=max_photos)
        else:
            root = shared_data_dir()
            if root is None:
                raise UserError(
                    "the test shard's photos live in ../shared/data (or set SLIMSWAP_SHARED); or pass --faces DIR"
                )
            face_set = robustness.face_set_from_shard(shard, root)
        swappers = _swappers_for(modes, device)
        params = robustness.TransformParams()
        run = robustness.evaluate_robustness(
            swappers,
            face_set,
            n=pairs,
            seed=seed,
            upsample=upsample,
            params=params,
            analyser=analyser,
            progress=sys.stderr.isatty(),
        )
        config = {
            "pairs": pairs,
            "seed": seed,
            "upsample": upsample,
            "test_set": face_set.name,
            "faces": len(face_set),
            "transforms": asdict(params),
        }
        paths = robustness.save_robustness_report(
            run, out, command_line(), environment(device), config
        )
    except UserError as err:
        fail(str(err))
    print(robustness.markdown_table(run.results))
    print(paths["md"])


@eval_app.command("temporal")
def eval_temporal(
    modes: list[str] = typer.Option(
        [],
        "--mode",
        "-m",
        help="Models to evaluate (repeat); default: classic and every installed mode.",
    ),
    video: Path | None = typer.Option(
        None, "--video", help="Talking-head video to swap (default: the bundled examples/clip.mp4)."
    ),
    source: Path | None = typer.Option(
        None, "--source", "-s", help="Face to put in (default: examples/grace_hopper.jpg)."
    ),
    every: int = typer.Option(10, "--every", help="Measure the ID distance every N frames."),
    max_frames: int = typer.Option(
        0, "--max-frames", help="Use only the first N frames (0: whole video)."
    ),
    out: Path = typer.Option(
        Path("benchmarks/eval"), "--out", help="Folder for temporal.{json,md,png}."
    ),
    device: str = typer.Option("cpu", "--device"),
) -> None:
    """Flicker of the swapped face vs the original video (target <= 1.5x) and ID distance over time."""
    from slimswap.evaluate import temporal
    from slimswap.evaluate.bench import BUNDLED_CLIP, DEFAULT_SOURCE
    from slimswap.evaluate.report import command_line, environment

    video, source = video or BUNDLED_CLIP, source or DEFAULT_SOURCE
    try:
        if max_frames < 0:
            raise UserError("--max-frames must be 0 (whole video) or positive")
        swappers = _swappers_for(modes, device)
        results = temporal.evaluate_temporal(
            swappers, video, source, every=every, max_frames=max_frames
        )
        config = {
            "video": str(video),
            "source": str(source),
            "every": every,
            "max_frames": max_frames,
        }
        paths = temporal.save_temporal_report(
            results, out, command_line(), environment(device), config
        )
    except UserError as err:
        fail(str(err))
    print(temporal.markdown_table(results))
    print(paths["md"])


# ------------------------------------------------------------------ provenance, batch jobs, web UI (issue 7)

job_app = typer.Typer(
    help="Inspect and retry the jobs of a `slimswap batch`.", no_args_is_help=True
)
app.add_typer(job_app, name="job")


@app.command()
def verify(
    file: Path = typer.Argument(..., help="Image or video to check."),
    frames: int = typer.Option(
        12, "--frames", help="Video: how many evenly spaced frames to check."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Report FILE's C2PA credentials, slimswap metadata label and invisible watermark.

    Exit code 0 when any synthetic label is found, 1 when none is, 2 if FILE cannot be read.
    """
    from slimswap.provenance import verify_file

    try:
        if frames < 1:
            raise UserError("--frames must be at least 1")
        report = verify_file(file, frames=frames)
    except UserError as err:
        fail(str(err))
    print(json.dumps(report.to_json(), indent=1) if as_json else "\n".join(report.lines()))
    raise typer.Exit(0 if report.labelled else 1)


@eval_app.command("watermark")
def eval_watermark(
    photos: int = typer.Option(200, "--photos", help="Marked CelebA photos to attack."),
    negatives: int = typer.Option(
        1000, "--negatives", help="Unmarked real photos (LFW + CelebA) for the false-positive rate."
    ),
    attacks: list[str] = typer.Option(
        [], "--attack", help="Attacks to run (repeat); default: all."
    ),
    out: Path = typer.Option(
        Path("benchmarks/eval"), "--out", help="Folder for watermark.{json,md}."
    ),
    video: bool = typer.Option(
        True,
        "--video/--no-video",
        help="Also swap the bundled clip and re-encode it (crf 23, 28, half size).",
    ),
) -> None:
    """What the invisible marks survive (JPEG, resize, crop, rotation, H.264, ...), false positives, PSNR, cost."""
    from slimswap.evaluate import watermark
    from slimswap.evaluate.report import command_line, environment
    from slimswap.paths import EXAMPLES_DIR, shared_data_dir

    try:
        root = shared_data_dir()
        if root is None:
            raise UserError("the photos live in ../shared/data (or set SLIMSWAP_SHARED)")
        result = watermark.evaluate_watermark(
            root,
            photos,
            negatives,
            attacks or tuple(watermark.ATTACKS),
            progress=lambda msg: console.print(f"[dim]{msg}[/]"),
            video=EXAMPLES_DIR / "clip.mp4" if video else None,
        )
        paths = watermark.save_watermark_report(result, out, command_line(), environment("cpu"))
    except UserError as err:
        fail(str(err))
    print(watermark.markdown(result))
    print(paths["md"])


def _print_job(job) -> None:
    if job.status == "done":
        console.print(
            f"[green]done[/]   {job.id}  {job.output}  ({job.seconds:.1f}s)", highlight=False
        )
    else:
        console.print(
            f"[red]failed[/] {job.id}  {Path(job.source).name} -> {Path(job.target).name}: {job.reason}",
            highlight=False,
        )


def _run_jobs(queue, swappers: dict | None = None) -> None:
    """Run the queue; the models its jobs need are loaded (and hash-checked) first, so a
    damaged model file stops the run with one line and exit code 2 before any job fails."""
    from slimswap.jobs import queued_models, run_queue
    from slimswap.swap.registry import load_swapper

    swappers = dict(swappers or {})
    for key in queued_models(queue) - set(swappers):
        swappers[key] = load_swapper(*key)
    summary = run_queue(queue, on_job=_print_job, swappers=swappers)
    console.print(
        f"{summary.done} done, {summary.failed} failed, {summary.skipped} already done before "
        f"in {summary.seconds:.1f}s; jobs in {queue.folder}",
        highlight=False,
    )
    if summary.failed:
        console.print(
            f"see why with `slimswap job list {queue.folder} --status failed`; retry with `slimswap job retry {queue.folder}`",
            highlight=False,
        )
        raise typer.Exit(1)


@app.command()
@options_from(JobSettings)
def batch(
    sources: list[str] = typer.Option(
        ...,
        "--source",
        "-s",
        help="Source face image or glob (quote it: 'faces/*.jpg'); repeatable.",
    ),
    targets: list[str] = typer.Option(
        ..., "--target", "-t", help="Target image/video or glob; repeatable."
    ),
    out_dir: Path = typer.Option(
        ...,
        "--out-dir",
        "-o",
        help="Folder for the outputs (created); the job queue goes in OUT_DIR/.slimswap-jobs.",
    ),
    name: str = typer.Option(
        "{source}_{target}{ext}",
        "--name",
        help="Output file name: {source}, {target} (stems), {index} (1-based, e.g. {index:04d}), {ext} (target's).",
    ),
    settings: JobSettings | None = None,
) -> None:
    """Swap every SOURCE into every TARGET as a resumable queue of jobs.

    Run it again to resume: finished items are not redone. Exit code 1 if any item failed
    (the others' outputs are kept), 2 if the batch could not start.
    """
    from slimswap.jobs import JOBS_DIRNAME, JobQueue, batch_outputs, enqueue, plan_batch
    from slimswap.swap.registry import load_swapper

    try:
        if settings.reference is not None:  # the job files outlive the current directory
            settings.reference = settings.reference.resolve()
        settings.check()
        from slimswap.provenance.credentials import load_credentials

        load_credentials(settings.c2pa_cert, settings.c2pa_key)  # a bad key fails now, not per job
        if out_dir.exists() and not out_dir.is_dir():
            raise UserError(f"--out-dir {out_dir} is a file; give a folder")
        queue = JobQueue(out_dir / JOBS_DIRNAME)
        planned = plan_batch(
            sources, targets, out_dir, name, settings, exclude=batch_outputs(queue)
        )
        swapper = load_swapper(settings.mode, settings.device)  # a bad model stops it here
        out_dir.mkdir(parents=True, exist_ok=True)
        added, known = enqueue(queue, planned)
        console.print(
            f"{len(planned)} jobs ({added} new, {known} from an earlier run) in {queue.folder}",
            highlight=False,
        )
        _run_jobs(queue, {(settings.mode, settings.device): swapper})
    except UserError as err:
        fail(str(err))


@job_app.command("list")
def job_list(
    folder: Path = typer.Argument(
        ..., help="The batch's output folder (or its .slimswap-jobs folder)."
    ),
    status: str | None = typer.Option(
        None, "--status", help="Only jobs with this status: queued, running, done, failed."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the jobs as JSON."),
) -> None:
    """List a batch's jobs with their status and, for failed ones, why."""
    from rich.table import Table

    from slimswap.jobs import STATUSES, JobQueue

    try:
        if status is not None and status not in STATUSES:
            raise UserError(f"--status must be one of {', '.join(STATUSES)}, got {status!r}")
        jobs = [j for j in JobQueue.find(folder).jobs() if status is None or j.status == status]
    except UserError as err:
        fail(str(err))
    if as_json:
        print(json.dumps([j.to_json() for j in jobs], indent=1))
        return
    table = Table(title=f"jobs in {folder}")
    for col in ("id", "#", "status", "source", "target", "output", "s", "reason"):
        table.add_column(col, overflow="fold")
    for j in jobs:
        colour = {"done": "green", "failed": "red", "running": "yellow"}.get(j.status, "")
        table.add_row(
            j.id,
            str(j.index),
            f"[{colour}]{j.status}[/]" if colour else j.status,
            Path(j.source).name,
            Path(j.target).name,
            Path(j.output).name,
            f"{j.seconds:.1f}" if j.seconds is not None else "",
            j.reason,
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)  # piped: no folding at 80
    counts = {s: sum(j.status == s for j in jobs) for s in STATUSES}
    print(", ".join(f"{n} {s}" for s, n in counts.items() if n))


@job_app.command("retry")
def job_retry(
    folder: Path = typer.Argument(
        ..., help="The batch's output folder (or its .slimswap-jobs folder)."
    ),
    ids: list[str] = typer.Argument(
        None, help="Job ids (or unique prefixes) to retry; default: every failed job."
    ),
) -> None:
    """Queue failed jobs again and run the queue (with each job's original settings)."""
    from slimswap.jobs import JobQueue, retry

    try:
        queue = JobQueue.find(folder)
        with queue.lock():
            again = retry(queue, ids or None)
        console.print(f"retrying {len(again)} job(s)", highlight=False)
        _run_jobs(queue)
    except UserError as err:
        fail(str(err))


@contextmanager
def _status_line(enabled: bool) -> Iterator[Callable[[str], None]]:
    """A one-line live status on stderr (fps, latency), updated in place; off when piped."""
    if not enabled:
        yield lambda line: None
        return
    with console.status("live: starting") as status:
        yield lambda line: status.update(f"live: {line}")


@app.command()
@options_from(LiveSettings)
def live(
    source: Path = typer.Option(
        ..., "--source", "-s", help="Image of the face to put in (one person, frontal is best)."
    ),
    settings: LiveSettings | None = None,
) -> None:
    """Swap the face from SOURCE into a camera or stream, live; Ctrl-C stops.

    Frames are swapped as they come; when swapping is slower than the source, frames are
    dropped instead of falling behind. Every frame carries the invisible watermark; a file
    output is labelled and C2PA-signed like any other.
    """
    from slimswap.live import run_live

    def started() -> None:
        console.print(
            f"live: swapping into {settings.input or f'camera {settings.camera or 0}'} -> "
            f"{settings.output}{f' {settings.out}' if settings.out else ''}; Ctrl-C to stop",
            highlight=False,
            soft_wrap=True,
        )

    try:
        with _status_line(sys.stderr.isatty()) as on_status:
            stats = run_live(source, settings, on_start=started, on_status=on_status)
    except UserError as err:
        fail(str(err))
    console.print(f"live: {stats.summary()}", highlight=False, soft_wrap=True)
    if settings.stats is not None:
        console.print(f"stats in {settings.stats}", highlight=False, soft_wrap=True)
    if settings.output == "file":
        print(settings.out)


@app.command()
def ui(
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Interface to serve on; the default keeps it on this machine."
    ),
    port: int = typer.Option(7860, "--port", help="TCP port."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
) -> None:
    """Open the web UI (Gradio) at http://HOST:PORT."""
    try:
        if device not in ("cpu", "cuda"):
            raise UserError(f"--device must be cpu or cuda, got {device!r}")
        try:
            from slimswap.ui.app import launch
        except ModuleNotFoundError as err:
            if err.name != "gradio":
                raise
            raise UserError(
                "the web UI needs gradio: pip install 'slimswap[ui]' (or pip install 'gradio>=6,<7')"
            ) from None
        launch(host=host, port=port, device=device)
    except UserError as err:
        fail(str(err))


if __name__ == "__main__":
    app()
