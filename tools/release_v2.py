"""Release the warp-guided v2 generators as `quality` and `lite`, replacing the v1 models.

    python tools/release_v2.py TEACHER.safetensors STUDENT.safetensors
    python tools/release_v2.py teacher-onnx TEACHER_FP32.onnx   # from `compress export`

Copies the two files the GPU session returned byte for byte into models/ (teacher_256,
lite_256), lists them in models/MANIFEST with their training commands, data, device and
licence, and drops the v1 entries and files (issue 12: "the old ones are replaced, not kept
beside them"). The ONNX exports of the lite model follow with
`slimswap compress export --model models/lite_256.safetensors --name lite_256 --release`.

`auto` is set for the teacher only: on the native-size evaluation (benchmarks/eval_v2) it is
the one learned model that beats the classic warp on recognizer top-1 as the source on both
held-out photo sets while being read as the target less often; the student beats classic on
deepface only and trails the teacher by 17-25 points, so `auto` does not pick it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from slimswap.compress.release import release_weights_file
from slimswap.paths import models_dir
from slimswap.swap.registry import manifest_path, remove_manifest_entries

V1 = ["teacher_128", "lite_128", "lite_128_fp32", "lite_128_fp16", "lite_128_int8"]
DATA = (
    "this session's `slimswap data build --videos ../shared/data/videos`: train_128.npz "
    "(LFW + CelebA subset + training clip frames, train split only; carried re-encoded at "
    "WebP q60) and train_256.npz (the faces with native 256 px crops)"
)
DEVICE = "4x NVIDIA H200 (lent nvidia-h200-x4), bf16 autocast, eager"


def eval_metrics(model: str) -> dict:
    """The model's rows of the native-size evaluation report, as manifest metrics."""
    rows = json.loads(Path("benchmarks/eval_v2/eval.json").read_text())
    keep = ("model", "mode", "test_set", "kind")
    return {
        "eval": {
            r["test_set"]: {
                k: round(v, 4) if isinstance(v, float) else v for k, v in r.items() if k not in keep
            }
            for r in rows
            if r["model"] == model
        },
        "eval_command": "see benchmarks/eval_v2/eval.md",
    }


def main(teacher: str, student: str) -> None:
    common = {
        "data": DATA,
        "device": DEVICE,
        "trained_by": "tools/gpu_session.py (slimswap.train.teacher, hide_target_face)",
    }
    t = release_weights_file(
        Path(teacher),
        "teacher_256",
        "quality",
        {
            **common,
            "steps": 9418,
            "samples_seen": 1392384,
            "commands": [
                (
                    "BATCH=64 bash tools/gpu_session.sh ab 410 hidden hidden_pairs60 hidden_id30 "
                    "hidden_student (variant hidden_id30, 1 GPU, 410 s)"
                ),
                (
                    "CUDA_VISIBLE_DEVICES=0,1,2 NGPU=3 BATCH=64 bash tools/gpu_session.sh cont 440 "
                    "hidden_id30 (DDP on 3 GPUs, 440 s, twice)"
                ),
            ],
        },
        eval_metrics("v2h_teacher"),
    )
    s = release_weights_file(
        Path(student),
        "lite_256",
        "lite",
        {
            **common,
            "steps": 10500,
            "commands": [
                "BATCH=64 bash tools/gpu_session.sh ab 410 ... hidden_student (1 GPU, 410 s)",
                (
                    "CUDA_VISIBLE_DEVICES=3 BATCH=64 python3 tools/gpu_session.py ablate "
                    "hidden_student 440 (1 GPU, twice, beside the teacher's DDP)"
                ),
            ],
            "note": "trained directly with the teacher's objective (no distillation)",
        },
        eval_metrics("v2h_student"),
    )
    data = json.loads(manifest_path().read_text())
    for e in data["models"]:
        if e["name"] == "teacher_256":
            e["auto"] = True
    manifest_path().write_text(json.dumps(data, indent=2) + "\n")
    removed = remove_manifest_entries(V1)
    for name in V1:
        for suffix in (".safetensors", ".onnx", "_export.json"):
            (models_dir() / f"{name}{suffix}").unlink(missing_ok=True)
    print("listed", t["name"], s["name"], "removed", removed)


def release_teacher_onnx(fp32_onnx: str) -> None:
    """List the teacher as ONNX fp32 compute with fp16-stored weights (`to_fp16_storage`):
    what `quality` runs on a CPU (107 vs 228 ms per face in torch on the 2-core machine),
    checked against the torch teacher on real val faces before it is listed."""
    from slimswap.compress.data import face_inputs
    from slimswap.compress.export import to_fp16_storage, validate
    from slimswap.compress.release import list_file
    from slimswap.swap.registry import read_manifest
    from slimswap.swap.weights import load_generator

    torch_entry = next(e for e in read_manifest() if e.name == "teacher_256")
    path = to_fp16_storage(fp32_onnx, models_dir() / "teacher_256_fp32.onnx")
    faces = face_inputs(["data/shards/val_128.npz", "data/shards/val_256.npz"], 16)
    check = validate(load_generator(torch_entry.path), path, faces)
    if check["max_abs_error"] > 1e-4:
        raise SystemExit(f"ONNX teacher disagrees with torch: {check}")
    list_file(
        path,
        "teacher_256_fp32",
        "quality",
        "onnx",
        "fp32",
        resolution=torch_entry.resolution,
        params=torch_entry.params,
        macs=torch_entry.macs,
        provenance={
            **torch_entry.provenance,
            "exported_by": "slimswap compress export --model models/teacher_256.safetensors "
            f"--name teacher_256; python tools/release_v2.py teacher-onnx {fp32_onnx}",
            "storage": "weights stored fp16 with Cast to fp32 (folded at load): fp32 compute",
        },
        metrics={
            "export": {
                "vs_torch_max_abs_error": float(f"{check['max_abs_error']:.3g}"),
                "vs_torch_face_psnr_db": round(float(check["face_psnr_db"]), 2),
                "check_faces": 16,
            }
        },
    )
    print(path, check)


if __name__ == "__main__":
    if sys.argv[1] == "teacher-onnx":
        release_teacher_onnx(sys.argv[2])
    else:
        main(*sys.argv[1:3])
