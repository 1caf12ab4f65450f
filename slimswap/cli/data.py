"""`slimswap data build`: face crops, descriptors and the identity split as training shards."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from slimswap.cli.common import console, fail, log_to_stderr
from slimswap.errors import UserError

app = typer.Typer(help="Build the training data shards.", no_args_is_help=True)


def _name_equals_dir(text: str) -> tuple[str, Path]:
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise UserError(
            f"--extra-test takes NAME=DIR (e.g. deepface=../shared/data/deepface_testset), got {text!r}"
        )
    return name, Path(folder)


@app.command("build")
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
