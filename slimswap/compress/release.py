"""Put a trained model into models/ and models/MANIFEST (hash, size, params, MACs, provenance).

Every entry is written by `list_file` from the file itself (sha256, bytes) and from this
code's alignment template and input normalisation, so the manifest cannot describe inputs the
code does not feed; nothing here edits the JSON by hand.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from slimswap.errors import UserError
from slimswap.face.align import TEMPLATE_NAME
from slimswap.files import atomic_write, sha256_file
from slimswap.paths import models_dir
from slimswap.swap.neural import PM1
from slimswap.swap.registry import write_manifest_entry
from slimswap.swap.weights import load_generator, save_generator, stored_precision

# The text up to the first ';' is what the swappers parse (swap.neural.NORMALISATIONS).
NORMALISATION = (
    f"{PM1.name}; identity = the source's dlib 128-D face descriptor (L2-normalised inside the "
    "net); guide = 4 channels: the source crop warped onto the target's landmarks (thin-plate "
    "spline) and colour-matched to the target, RGB in [-1, 1], plus the target's face region "
    "in [0, 1] (slimswap/face/warp.py guide_for_crops)"
)
LICENCE = "research use only (LFW and CelebA are research-only datasets)"


def model_macs(model: torch.nn.Module) -> int:
    """MACs of one face at the model's resolution (torch-pruning's counter)."""
    from slimswap.compress.prune import count

    return count(model)[0]


def list_file(path: Path, name: str, mode: str, backend: str, precision: str, **fields) -> dict:
    """Add (or replace) the manifest entry of a file in models/: its hash, size, the alignment
    template and normalisation this code uses, and `fields` (resolution, params, macs,
    provenance, metrics)."""
    entry = {
        "name": name,
        "file": path.name,
        "sha256": sha256_file(path),
        "mode": mode,
        "backend": backend,
        "precision": precision,
        "bytes": path.stat().st_size,
        "template": TEMPLATE_NAME,
        "normalisation": NORMALISATION,
        "metrics": {},
        **fields,
    }
    write_manifest_entry(entry)
    return entry


def _torch_fields(model: torch.nn.Module, provenance: dict, metrics: dict | None) -> dict:
    return {
        "resolution": int(model.config.resolution),
        "params": sum(p.numel() for p in model.parameters()),
        "macs": model_macs(model),
        "provenance": {"licence": LICENCE, **provenance},
        "metrics": metrics or {},
    }


def release_torch(
    model: torch.nn.Module, name: str, mode: str, provenance: dict, metrics: dict | None = None
) -> dict:
    """Save fp16 safetensors under models/ and list it in the manifest."""
    path = models_dir() / f"{name}.safetensors"
    save_generator(model, path, dtype=torch.float16)
    return list_file(
        path,
        name,
        mode,
        "torch",
        stored_precision(path),
        **_torch_fields(model, provenance, metrics),
    )


def release_weights_file(
    src: Path, name: str, mode: str, provenance: dict, metrics: dict | None = None
) -> dict:
    """Copy a save_generator file into models/<name>.safetensors byte for byte and list it.

    For weights that come back from a training machine already in the release format: the
    copy keeps the exact file that was trained and scored (a re-save could change bytes).
    """
    src = Path(src)
    model = load_generator(src)  # also checks the file is a loadable generator
    path = models_dir() / f"{name}.safetensors"
    if src.resolve() != path.resolve():
        with atomic_write(path) as tmp:
            shutil.copyfile(src, tmp)
    return list_file(
        path,
        name,
        mode,
        "torch",
        stored_precision(path),
        **_torch_fields(model, provenance, metrics),
    )


def release_exports(
    model: Path, name: str, report: dict, command: str, metrics: dict | None = None
) -> list[dict]:
    """List `compress export`'s three files (<name>_fp32/_fp16/_int8.onnx) in the manifest.

    Mode, parameters, MACs and provenance come from the torch model's own entry (the file
    `model`), so the exports say what they were exported from; `report` (export_all's
    validation numbers) goes into their metrics, with `metrics[precision]` (e.g. the
    compression report's latency and PSNR vs the teacher) added when given.
    """
    from slimswap.swap.registry import read_manifest

    source = next((e for e in read_manifest() if e.path.resolve() == Path(model).resolve()), None)
    if source is None:
        raise UserError(f"{model} is not listed in models/MANIFEST: release it first")
    entries = []
    for precision in ("fp32", "fp16", "int8"):
        numbers = report[precision]
        provenance = {**source.provenance, "exported_by": command}
        values = {
            "vs_torch_psnr_db": round(numbers["psnr_vs_torch_db"], 2),
            "vs_torch_face_psnr_db": round(numbers["face_psnr_vs_torch_db"], 2),
            "vs_torch_max_abs_error": float(f"{numbers['max_abs_error_vs_torch']:.3g}"),
        }
        if precision == "int8":
            parts = ", ".join(report.get("float_conv_parts", []))
            provenance["quantization"] = (
                "ONNX Runtime static QDQ, Conv only, per-channel 7-bit weights (reduce_range), "
                f"uint8 activations, calibrated on {report['faces']['calibration']} real val "
                f"faces; float: norms, AdaIN Gemm, attention and the Convs of {parts} "
                f"({len(report['excluded_nodes'])} nodes)"
            )
            values["int8_vs_fp32_psnr_db"] = round(numbers["psnr_vs_onnx_fp32_db"], 2)
            values["int8_vs_fp32_face_psnr_db"] = round(numbers["face_psnr_vs_onnx_fp32_db"], 2)
        values["check_faces"] = report["faces"]["check"]
        path = models_dir() / numbers["file"]
        entries.append(
            list_file(
                path,
                f"{name}_{precision}",
                source.mode,
                "onnx",
                precision,
                resolution=source.resolution,
                params=source.params,
                macs=source.macs,
                provenance=provenance,
                metrics={"export": values, **(metrics or {}).get(precision, {})},
            )
        )
    return entries


def report_rows(path: Path | None) -> tuple[dict[str, dict], dict]:
    """({file name: row}, context) of `compress report`'s compression.json (empty for None)."""
    import json

    if path is None:
        return {}, {}
    if not Path(path).is_file():
        raise UserError(f"compression report not found: {path}")
    data = json.loads(Path(path).read_text())
    return {r["file"]: r for r in data["rows"]}, data["context"]


def report_metrics(row: dict | None, context: dict) -> dict:
    """A compression-report row as manifest metrics: latency with the load it ran under."""
    if row is None:
        return {}
    return {
        "compression_report": {
            "cpu_ms_median_2_threads": round(row["cpu_ms"], 1),
            "cpu_ms_p10": round(row["cpu_ms_p10"], 1),
            "load_average": context["load_average_before"],
            "psnr_vs_teacher_db": _finite(row["psnr_vs_teacher_db"]),
            "face_psnr_vs_teacher_db": _finite(row["face_psnr_vs_teacher_db"]),
            "face_psnr_vs_own_torch_fp32_db": _finite(row.get("face_psnr_vs_torch_twin_db")),
            "faces": context["faces"]["n"],
            "date": context["started"],
            "report": "benchmarks/compress/compression.md",
        }
    }


def export_metrics(report_json: Path | None, name: str) -> dict:
    """{precision: metrics} for the <name>_<precision>.onnx rows of a compression report."""
    rows, context = report_rows(report_json)
    return {
        p: report_metrics(rows.get(f"{name}_{p}.onnx"), context) for p in ("fp32", "fp16", "int8")
    }


def write_compression_summary(report_json: Path) -> dict:
    """The manifest's "compression_summary": every row of `compress report`'s compression.json
    (size, params, MACs, CPU ms, PSNR vs the teacher) with the conditions they were timed in."""
    from slimswap.swap.registry import write_manifest_section

    rows, context = report_rows(report_json)
    keys = ("name", "file", "backend", "precision", "bytes", "params", "macs")
    summary = {
        "report": "benchmarks/compress/compression.md",
        "date": context["started"],
        "load_average": context["load_average_before"],
        "threads": context["threads"],
        "rows": [
            {
                **{k: r[k] for k in keys},
                "cpu_ms_median": round(r["cpu_ms"], 1),
                "cpu_ms_median_1_thread": round(r["cpu_ms_1_thread"], 1),
                "psnr_vs_teacher_db": _finite(r["psnr_vs_teacher_db"]),
                "face_psnr_vs_teacher_db": _finite(r["face_psnr_vs_teacher_db"]),
            }
            for r in rows.values()
        ],
    }
    write_manifest_section("compression_summary", summary)
    return summary


def _finite(x: float | None) -> float | None:
    """JSON has no infinity: the teacher against itself (or a torch row's twin) is null."""
    import math

    return round(x, 2) if x is not None and math.isfinite(x) else None


def unlist(names: list[str]) -> list[str]:
    """Drop entries from models/MANIFEST (their files are left for `git rm`); returns the
    names that were listed."""
    from slimswap.swap.registry import remove_manifest_entries

    return remove_manifest_entries(names)
