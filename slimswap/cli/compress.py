"""`slimswap compress`: sensitivity, pruning, distillation, quantization, export and report."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import typer
from rich.console import Console

from slimswap.cli.common import console, fail, log_to_stderr, options_from
from slimswap.cli.train import TrainRun
from slimswap.errors import UserError

app = typer.Typer(
    help="Shrink a generator: sensitivity, pruning, distillation, quantization, export.",
    no_args_is_help=True,
)


VAL_FACES = [Path("data/shards/val_128.npz"), Path("data/shards/val_256.npz")]
TEACHER = Path("models/teacher_256.safetensors")  # the released quality model
FACES_HELP = "Shards of real faces (repeat --faces); default: the val split."


@app.command("sensitivity")
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


@app.command("prune")
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


@app.command("export")
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


@app.command("int8-sensitivity")
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


@app.command("report")
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


@app.command("distill")
@options_from(TrainRun)
def compress_distill(
    teacher: Path = typer.Option(
        TEACHER,
        "--teacher",
        help="Teacher weights (safetensors with config).",
    ),
    out: Path = typer.Option(
        Path("runs/student"), "--out", help="Run folder (resumes if a checkpoint is there)."
    ),
    critic_from: Path | None = typer.Option(
        None,
        "--critic-from",
        help="Folder holding the teacher run's D.safetensors, to start the discriminator from.",
    ),
    settings: TrainRun | None = None,
) -> None:
    """Distil the teacher into the lite student (depthwise-separable, attention fusion)."""
    from slimswap.nets.warp_generator import SwapGeneratorConfig
    from slimswap.swap.weights import read_metadata
    from slimswap.train.distill import DistillConfig, distill_student

    cfg = settings.config(out)
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
        last = distill_student(cfg, distill, settings.export_compact)
    except (UserError, FileNotFoundError) as err:
        fail(str(err))
    console.print(json.dumps(last, indent=1))
