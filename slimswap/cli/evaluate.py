"""`slimswap eval`: swap quality on held-out identities, robustness, temporal stability and
what the invisible marks survive."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from slimswap.cli.common import console, fail, swappers_for
from slimswap.errors import UserError

app = typer.Typer(help="Measure swap quality on held-out identities.", no_args_is_help=True)
# the models `eval robustness` and `eval temporal` measure (swappers_for)
MODES = typer.Option(
    [],
    "--mode",
    "-m",
    help="Models to evaluate (repeat); default: classic and every installed mode.",
)


def _build_frames(shards_dir: Path) -> Path:
    """The held-out clip frames `data build --videos` wrote beside its shards.

    Older builds kept them in <shards>/../frames; either is used, the newer first.
    """
    for folder in (shards_dir / "video_frames", shards_dir.parent / "frames"):
        if (folder / "video_held_out").is_dir():
            return folder / "video_held_out"
    return shards_dir / "video_frames" / "video_held_out"


@app.command("swapper")
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
    driver: str = typer.Option(
        "dlib",
        "--driver",
        help="Whose landmarks drive the swaps: dlib (the judge's own, as earlier reports) or "
        "mediapipe (what `slimswap swap` uses by default); dlib judges the results either way.",
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
        if driver not in ("dlib", "mediapipe"):
            raise UserError(f"--driver must be dlib or mediapipe, got {driver!r}")
        cfg = swap_eval.EvalConfig(
            pairs, same_pairs, self_pairs, grid, max_side, seed=seed, resume=resume,
            driver=driver,
        )  # fmt: skip
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
            "driver": driver,
        }
        paths = swap_eval.save_report(run, out, command_line(), environment(device), config, judge)
    except UserError as err:
        fail(str(err))
    print(paths["md"].read_text().split("## Picture")[0])
    print(paths["md"])


@app.command("robustness")
def eval_robustness(
    modes: list[str] = MODES,
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
        swappers = swappers_for(modes, device)
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


@app.command("temporal")
def eval_temporal(
    modes: list[str] = MODES,
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
        swappers = swappers_for(modes, device)
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


@app.command("watermark")
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
