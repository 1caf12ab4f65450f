"""The compression report: teacher and student (and a pruned teacher), torch and ONNX files.

For every file: parameters, MACs at the model's resolution, file size (and its share of the
teacher's fp32 size, parameters x 4 bytes), CPU latency per face (batch 1; torch and ONNX
Runtime both on 2 threads) and the PSNR of its swaps against the teacher's fp32 torch swaps
on real val faces with real warp guides, over the whole crop and inside the face region.

Latency on a shared machine: every model is timed in interleaved rounds (a burst of load hits
all of them alike rather than whichever ran at that moment), the median and the 10th
percentile of all calls are reported, and the load average before and after goes into the
report. Identity and sharpness are not measured here: they come from `slimswap eval`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from slimswap.compress import export
from slimswap.files import atomic_write

THREADS = 2  # the report's latency column; ONE_THREAD is timed alongside
ONE_THREAD = 1


@dataclass
class Row:
    name: str
    file: str
    backend: str  # torch | onnx
    precision: str
    bytes: int
    params: int
    macs: int
    cpu_ms: float  # median per face, batch 1, THREADS threads
    cpu_ms_p10: float
    timed_calls: int
    cpu_ms_1_thread: float  # median per face, batch 1, one thread
    psnr_vs_teacher_db: float
    face_psnr_vs_teacher_db: float
    # an ONNX file against the fp32 torch model it was exported from (INT8 vs fp32, ...)
    face_psnr_vs_torch_twin_db: float = float("nan")


@dataclass
class Candidate:
    """One file to report: a torch generator (.safetensors, or a pickled pruned .pt) or an
    ONNX export, whose parameters and MACs come from the torch model it was exported from."""

    name: str
    path: Path
    twin: str = ""  # for ONNX: the name of the torch candidate it was exported from


def load_torch(path: Path) -> torch.nn.Module:
    from slimswap.swap.weights import load_generator

    if path.suffix == ".pt":  # a pruned model: irregular widths no config describes
        return torch.load(path, weights_only=False).float().eval()
    return load_generator(path)


def precision_of(path: Path) -> str:
    if path.suffix == ".onnx":
        for p in ("fp32", "fp16", "int8"):
            if path.stem.endswith(f"_{p}"):
                return p
        return "fp32"
    if path.suffix == ".pt":
        return "fp32"
    from slimswap.swap.weights import stored_precision

    return f"{stored_precision(path)} file, fp32 compute"


def interleaved_latency(
    fns: dict, seconds_per_model: float = 20.0, min_calls: int = 20
) -> dict[object, list[float]]:
    """Milliseconds per call of each function, timed in interleaved rounds after warm-up.

    Each model gets about `seconds_per_model` (at least `min_calls` calls), spread over 10
    rounds that visit every model in turn.
    """
    per_call = {}
    for name, fn in fns.items():
        for _ in range(3):
            fn()
        start = time.perf_counter()
        fn()
        per_call[name] = time.perf_counter() - start
    rounds = 10
    times: dict[object, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            calls = max(min_calls // rounds, int(seconds_per_model / rounds / per_call[name]))
            for _ in range(max(1, calls)):
                start = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - start) * 1000)
    return times


def build_rows(
    candidates: list[Candidate],
    inputs: export.Inputs,
    faces: str,
    seconds_per_model: float = 20.0,
) -> tuple[list[Row], dict]:
    """Rows for every candidate (the first must be the teacher, torch) and the run's context.

    inputs: real model inputs at the models' resolution (`compress.data.face_inputs`);
    faces: where they came from, for the report's text.
    """
    from slimswap.compress.prune import count

    torch.set_num_threads(THREADS)
    teacher = load_torch(candidates[0].path)
    face = export.face_weight(inputs)
    one = {k: v[:1] for k, v in inputs.items()}
    ref = export.run_torch(teacher, inputs)
    torch_models = {c.name: load_torch(c.path) for c in candidates if c.path.suffix != ".onnx"}
    counts = {name: count(m) for name, m in torch_models.items()}
    outs, fns = {}, {}
    for c in candidates:
        if c.path.suffix == ".onnx":
            outs[c.name] = export.run_onnx(export.session(c.path, THREADS), inputs)
            for threads in (THREADS, ONE_THREAD):
                sess = export.session(c.path, threads)
                feed = export.feed_for(sess, one)
                fns[c.name, threads] = lambda sess=sess, feed=feed: sess.run(None, feed)
        else:
            model = torch_models[c.name]
            outs[c.name] = export.run_torch(model, inputs)
            args = {k: torch.from_numpy(one[k]) for k in export.input_names(model)}
            for threads in (THREADS, ONE_THREAD):

                def call(model=model, args=args, threads=threads):
                    torch.set_num_threads(threads)
                    with torch.inference_mode():
                        return model(**args)

                fns[c.name, threads] = call
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M")
    times = interleaved_latency(fns, seconds_per_model)
    torch.set_num_threads(THREADS)
    load_after = os.getloadavg()
    rows = []
    for c in candidates:
        macs, params = counts[c.twin or c.name]
        rows.append(
            Row(
                c.name,
                c.path.name,
                "onnx" if c.path.suffix == ".onnx" else "torch",
                precision_of(c.path),
                c.path.stat().st_size,
                params,
                macs,
                float(np.median(times[c.name, THREADS])),
                float(np.percentile(times[c.name, THREADS], 10)),
                len(times[c.name, THREADS]),
                float(np.median(times[c.name, ONE_THREAD])),
                export.psnr_pm1(outs[c.name], ref),
                export.psnr_pm1(outs[c.name], ref, face),
                export.psnr_pm1(outs[c.name], outs[c.twin], face) if c.twin else float("nan"),
            )
        )
    context = {
        "started": started,
        "cpu": _cpu(),
        "cores": os.cpu_count(),
        "threads": THREADS,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "faces": {"source": faces, "n": len(inputs["target"])},
        "versions": _versions(),
    }
    return rows, context


def _cpu() -> str:
    from slimswap.evaluate.report import cpu_features, cpu_name

    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in cpu_features().items())
    return f"{cpu_name()} ({flags})"


def _versions() -> dict:
    import onnxruntime

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def teacher_fp32_bytes(rows: list[Row]) -> int:
    return rows[0].params * 4


def markdown(rows: list[Row]) -> str:
    t = rows[0]
    full = teacher_fp32_bytes(rows)
    head = (
        "| model | file | backend | precision | size MB | size vs teacher fp32 | params | "
        "GMACs | MACs vs teacher | CPU ms median | CPU ms p10 | calls | CPU ms median, 1 thread "
        "| PSNR vs teacher dB | face PSNR vs teacher dB | face PSNR vs own torch fp32 dB |"
    )
    lines = [
        head,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        twin = r.face_psnr_vs_torch_twin_db
        lines.append(
            f"| {r.name} | {r.file} | {r.backend} | {r.precision} | {r.bytes / 1e6:.2f} | "
            f"{r.bytes / full:.1%} | {r.params / 1e6:.3f}M | {r.macs / 1e9:.3f} | "
            f"{r.macs / t.macs:.1%} | {r.cpu_ms:.1f} | {r.cpu_ms_p10:.1f} | {r.timed_calls} | "
            f"{r.cpu_ms_1_thread:.1f} | "
            f"{r.psnr_vs_teacher_db:.1f} | {r.face_psnr_vs_teacher_db:.1f} | "
            f"{'' if math.isnan(twin) else f'{twin:.1f}'} |"
        )
    return "\n".join(lines)


def context_text(context: dict) -> str:
    return (
        f"Run {context['started']} on {context['cpu']}, {context['cores']} cores, "
        f"{context['threads']} threads (torch and ONNX Runtime; one thread in its own column; "
        "ONNX Runtime without thread spinning, as the swapper runs it), batch 1 at the model's "
        f"resolution; load average (1/5/15 min) {context['load_average_before']} before the "
        f"timing and {context['load_average_after']} after (the machine is shared: medians "
        "of interleaved rounds, the 10th percentile shows the less-loaded end). PSNR of each "
        f"model's swaps against the teacher's fp32 torch swaps on {context['faces']['n']} real "
        f"faces ({context['faces']['source']}) with other people's warped faces "
        "and identities; 'face' = inside the face region (the guide's mask); the last column "
        "compares an ONNX file with the torch model it was exported from (INT8 vs fp32). "
        "Versions: " + ", ".join(f"{k} {v}" for k, v in context["versions"].items()) + "."
    )


def save(rows: list[Row], context: dict, out_dir: Path, command: str) -> Path:
    """compression.md / .json / .png in out_dir; returns the markdown's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "compression.md"
    with atomic_write(md) as tmp:
        tmp.write_text(
            "# Compression report\n\n"
            f"Command: `{command}`.\n\n"
            + context_text(context)
            + " Teacher fp32 size = its parameters x 4 bytes.\n\n"
            + markdown(rows)
            + "\n"
        )
    with atomic_write(out_dir / "compression.json") as tmp:
        rows_json = [
            {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(r).items()
            }
            for r in rows
        ]  # JSON has no infinity or NaN: the teacher against itself is null
        tmp.write_text(json.dumps({"context": context, "rows": rows_json}, indent=1))
    full = teacher_fp32_bytes(rows)
    metrics = [
        ("size vs teacher fp32 (%)", lambda r: 100 * r.bytes / full),
        ("GMACs", lambda r: r.macs / 1e9),
        ("CPU ms per face (median)", lambda r: r.cpu_ms),
        ("face PSNR vs teacher (dB)", lambda r: min(r.face_psnr_vs_teacher_db, 60)),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.5))
    names = [r.name for r in rows]
    for ax, (title, f) in zip(axes.flat, metrics, strict=True):
        ax.bar(names, [f(r) for r in rows], color=["tab:gray"] + ["tab:blue"] * (len(rows) - 1))
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=60, labelsize=7)
    fig.tight_layout()
    with atomic_write(out_dir / "compression.png") as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
    return md
