"""The compression report: teacher / pruned / student / student-int8 side by side.

Size, parameters, MACs, CPU latency (batch 1, this machine), PSNR of each model's swaps
against the teacher's on real held-out faces, and the quality numbers of `slimswap eval
swapper` (ID distance, NME) where that evaluation has been run for the model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from slimswap.compress.export import psnr_pm1, run_onnx


@dataclass
class Row:
    name: str
    file: str
    bytes: int
    params: int
    macs: int
    cpu_ms: float
    psnr_vs_teacher_db: float
    id_dist_to_source: float = float("nan")
    landmark_nme: float = float("nan")


def _latency(fn, repeats: int = 30) -> float:
    """Median milliseconds per call after 5 warm-up calls."""
    from slimswap.evaluate.bench import percentiles_ms, time_calls

    return percentiles_ms(
        time_calls(fn, warmup=5, repeats=repeats, budget_s=float("inf"), cuda=False)
    )[0]


def _onnx_session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def build_rows(
    teacher_path: Path, candidates: dict[str, Path], calib_shard: Path, eval_json: Path | None
) -> list[Row]:
    from slimswap.compress.data import real_arrays
    from slimswap.compress.prune import count
    from slimswap.swap.neural import to_model_input
    from slimswap.swap.weights import load_generator

    crops, _, other = real_arrays(calib_shard, 64, seed=2)
    x = to_model_input(crops)
    teacher = load_generator(teacher_path)
    with torch.no_grad():
        ref = teacher(torch.from_numpy(x), torch.from_numpy(other)).numpy()
    evals = {}
    if eval_json is not None and eval_json.is_file():
        for r in json.loads(eval_json.read_text()):
            if r["test_set"] == "test_128":
                evals[r["model"]] = r
    x1, e1 = torch.from_numpy(x[:1]), torch.from_numpy(other[:1])
    macs, params = count(teacher, (x1, e1))
    with torch.no_grad():
        t_ms = _latency(lambda: teacher(x1, e1))
    rows = [
        Row(
            "teacher",
            teacher_path.name,
            teacher_path.stat().st_size * 2,
            params,
            macs,
            t_ms,
            float("inf"),
        )
    ]
    for name, path in candidates.items():
        if path.suffix == ".onnx":
            sess = _onnx_session(path)
            out = run_onnx(path, x, other)
            ms = _latency(
                lambda sess=sess: sess.run(None, {"target": x[:1], "identity": other[:1]})
            )
            torch_twin = path.with_name(
                path.name.replace("_int8.onnx", ".safetensors").replace(
                    "_fp32.onnx", ".safetensors"
                )
            )
            pt = path.with_name(path.stem.replace("_fp32", "") + ".pt")
            if pt.is_file():
                model = torch.load(pt, weights_only=False)
            elif torch_twin.is_file():
                model = load_generator(torch_twin)
            else:
                model = None
            m, p = count(model, (x1, e1)) if model is not None else (0, 0)
        else:
            model = load_generator(path)
            with torch.no_grad():
                out = model(torch.from_numpy(x), torch.from_numpy(other)).numpy()
                ms = _latency(lambda model=model: model(x1, e1))
            m, p = count(model, (x1, e1))
        row = Row(name, path.name, path.stat().st_size, p, m, ms, psnr_pm1(out, ref))
        ev = evals.get(path.stem) or evals.get(name)
        if ev:
            row.id_dist_to_source, row.landmark_nme = ev["id_dist_to_source"], ev["landmark_nme"]
        rows.append(row)
    ev = evals.get(teacher_path.stem)
    if ev:
        rows[0].id_dist_to_source, rows[0].landmark_nme = (
            ev["id_dist_to_source"],
            ev["landmark_nme"],
        )
    return rows


def markdown(rows: list[Row]) -> str:
    t = rows[0]
    lines = [
        "| model | file | size MB | size vs teacher fp32 | params | MACs | MACs vs teacher | CPU ms (batch 1, 2 threads) | PSNR vs teacher dB | ID dist → source | landmark NME |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.file} | {r.bytes / 1e6:.2f} | {r.bytes / t.bytes:.1%} | {r.params / 1e6:.2f}M | {r.macs / 1e9:.2f}G | "
            f"{r.macs / t.macs:.1%} | {r.cpu_ms:.1f} | {r.psnr_vs_teacher_db:.1f} | {r.id_dist_to_source:.3f} | {r.landmark_nme:.4f} |"
        )
    return "\n".join(lines)


def save(rows: list[Row], out_dir: Path, command: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "compression.md"
    md.write_text(
        "# Compression report\n\n"
        f"Command: `{command}`. Teacher size is its fp32 size (2 x the fp16 file). CPU latency on this "
        "2-core machine; PSNR of each model's swaps against the teacher's on 64 real val faces with "
        "other people's identities; ID distance and NME from `benchmarks/eval/eval.json` (test split).\n\n"
        + markdown(rows)
        + "\n"
    )
    (out_dir / "compression.json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
    metrics = [
        ("size MB", lambda r: r.bytes / 1e6),
        ("GMACs", lambda r: r.macs / 1e9),
        ("CPU ms", lambda r: r.cpu_ms),
        ("ID dist → source", lambda r: r.id_dist_to_source),
        ("landmark NME", lambda r: r.landmark_nme),
        ("PSNR vs teacher", lambda r: min(r.psnr_vs_teacher_db, 60)),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    names = [r.name for r in rows]
    for ax, (title, f) in zip(axes.flat, metrics):
        ax.bar(
            names,
            [f(r) for r in rows],
            color=["tab:gray", "tab:orange", "tab:blue", "tab:green"][: len(rows)],
        )
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    fig.savefig(out_dir / "compression.png", dpi=80)
    plt.close(fig)
    return md
