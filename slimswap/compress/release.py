"""Put a trained model into models/ and models/MANIFEST (hash, size, params, MACs, provenance).

Every entry is written by `list_file` from the file itself (sha256, bytes) and from this
code's alignment template and input normalisation, so the manifest cannot describe inputs the
code does not feed; nothing here edits the JSON by hand. One release path for every kind of
model file: torch weights (`release_weights_file`), the ONNX exports of a listed model
(`list_export`: `release_exports` for `compress export`'s three files, `release_fp16_storage`
for an fp32 graph stored with fp16 weights), the `auto` flag (`set_auto`) and the removal of
old entries (`unlist`). `python tools/release.py` is the command line over these.
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


# The released file stem of each mode: models/teacher_256.safetensors is `quality`.
STEMS = {"quality": "teacher", "lite": "lite"}


def release_name(mode: str, resolution: int) -> str:
    """The entry name (and file stem) a mode's model is released under, e.g. teacher_256."""
    if mode not in STEMS:
        raise UserError(f"mode must be one of {', '.join(STEMS)}, got {mode!r}")
    return f"{STEMS[mode]}_{resolution}"


def checkpoint_weights(src: Path) -> tuple[Path, dict]:
    """(a save_generator file, extra provenance) from a file or a compact checkpoint folder
    (G_ema.safetensors + state.json of a training run: its steps and samples go into the
    provenance)."""
    import json
    import tempfile

    from safetensors.torch import load_file

    from slimswap.swap.weights import build_generator

    src = Path(src)
    if src.is_file():
        return src, {}
    state = json.loads((src / "state.json").read_text())
    gen = state["generator"]
    model = build_generator(gen["arch"], json.dumps(gen["config"]))
    model.load_state_dict(
        {k: v.float() for k, v in load_file(str(src / "G_ema.safetensors")).items()}
    )
    out = Path(tempfile.mkdtemp()) / "G_ema_release.safetensors"
    save_generator(model, out)
    return out, {"steps": state["step"], "samples_seen": state["samples_seen"]}


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


def listed_entry(model: Path):
    """The models/MANIFEST entry of a released file (ModelEntry), or UserError."""
    from slimswap.swap.registry import read_manifest

    source = next((e for e in read_manifest() if e.path.resolve() == Path(model).resolve()), None)
    if source is None:
        raise UserError(f"{model} is not listed in models/MANIFEST: release it first")
    return source


def list_export(
    source, path: Path, name: str, precision: str, provenance: dict, metrics: dict
) -> dict:
    """List an ONNX file exported from the listed model `source` (a ModelEntry): mode,
    resolution, parameters, MACs and provenance come from its entry, so an export says what
    it was exported from; `provenance` adds to it (e.g. exported_by)."""
    return list_file(
        path,
        name,
        source.mode,
        "onnx",
        precision,
        resolution=source.resolution,
        params=source.params,
        macs=source.macs,
        provenance={**source.provenance, **provenance},
        metrics=metrics,
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
    source = listed_entry(model)
    entries = []
    for precision in ("fp32", "fp16", "int8"):
        numbers = report[precision]
        provenance = {"exported_by": command}
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
        metrics_p = {"export": values, **(metrics or {}).get(precision, {})}
        entries.append(
            list_export(source, path, f"{name}_{precision}", precision, provenance, metrics_p)
        )
    return entries


def release_fp16_storage(
    model: Path,
    fp32_onnx: Path,
    name: str,
    inputs: dict,
    command: str,
    max_abs_error: float = 1e-4,
) -> tuple[dict, dict]:
    """List an fp32 export of the listed model `model` as <name>_fp32.onnx with its weights
    stored fp16 (`compress.export.to_fp16_storage`: fp32 compute, half the file), checked
    against the torch model on `inputs` (real faces, `compress.data.face_inputs`) before it
    is listed: (entry, check).

    What `quality` runs on a CPU (the teacher: 107 vs 228 ms per face in torch on the 2-core
    machine). A file that disagrees by more than `max_abs_error` is removed, not listed.
    """
    from slimswap.compress.export import to_fp16_storage, validate

    source = listed_entry(model)
    path = to_fp16_storage(fp32_onnx, models_dir() / f"{name}_fp32.onnx")
    check = validate(load_generator(source.path), path, inputs)
    if check["max_abs_error"] > max_abs_error:
        path.unlink()
        raise UserError(f"the ONNX file disagrees with {source.name} in torch: {check}")
    entry = list_export(
        source,
        path,
        f"{name}_fp32",
        "fp32",
        {
            "exported_by": command,
            "storage": "weights stored fp16 with Cast to fp32 (folded at load): fp32 compute",
        },
        {
            "export": {
                "vs_torch_max_abs_error": float(f"{check['max_abs_error']:.3g}"),
                "vs_torch_face_psnr_db": round(float(check["face_psnr_db"]), 2),
                "check_faces": len(inputs["target"]),
            }
        },
    )
    return entry, check


def set_auto(name: str, on: bool = True) -> None:
    """Mark (or unmark) a listed model as the one `--mode auto` may pick: only for a model
    whose native-size evaluation met its release targets (registry.resolve_mode)."""
    from slimswap.swap.registry import update_manifest_entry

    update_manifest_entry(name, auto=on)


def eval_metrics(eval_json: Path, model: str) -> dict:
    """The rows of `slimswap eval swapper`'s eval.json for `model` (the name it ran under), as
    manifest metrics: {"eval": {test set: numbers}, "eval_command": where the report is}."""
    import json

    rows = json.loads(Path(eval_json).read_text())
    keep = ("model", "mode", "test_set", "kind")
    scores = {
        r["test_set"]: {
            k: round(v, 4) if isinstance(v, float) else v for k, v in r.items() if k not in keep
        }
        for r in rows
        if r["model"] == model
    }
    if not scores:
        raise UserError(f"{eval_json} has no rows for model {model!r}")
    return {"eval": scores, "eval_command": f"see {Path(eval_json).with_suffix('.md')}"}


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


def unlist(names: list[str], delete_files: bool = False) -> list[str]:
    """Drop entries from models/MANIFEST; returns the names that were listed. Their files are
    left for `git rm`, or deleted with `delete_files` (with a torch file's <stem>_export.json)."""
    import json

    from slimswap.swap.registry import manifest_path, remove_manifest_entries

    files = []
    if delete_files and manifest_path().is_file():
        listed = json.loads(manifest_path().read_text())["models"]
        files = [models_dir() / e["file"] for e in listed if e["name"] in names]
    removed = remove_manifest_entries(names)
    for path in files:
        path.unlink(missing_ok=True)
        path.with_name(f"{path.stem}_export.json").unlink(missing_ok=True)
    return removed
