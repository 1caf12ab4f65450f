"""Release generator weights into models/ and models/MANIFEST (through slimswap.compress.release).

    python tools/release_model.py torch quality runs/teacher.safetensors [--metrics REPORT]
        -> models/quality_256.safetensors (byte copy), entry quality_256
    python tools/release_model.py torch lite runs/student.safetensors [--metrics REPORT]
        -> models/lite_256.safetensors, entry lite_256
    python tools/release_model.py exports models/lite_256.safetensors lite_256 [--metrics REPORT]
        -> entries lite_256_fp32/_fp16/_int8 for the files `slimswap compress export --name
           lite_256 --out models` wrote, with its saved validation (models/lite_256_export.json)
    python tools/release_model.py summary REPORT    # MANIFEST's compression_summary from it
    python tools/release_model.py unlist NAME ...   # drop entries (then `git rm` their files)

REPORT is `slimswap compress report`'s compression.json: the row of each released file (CPU
latency with its load average, PSNR vs the teacher) goes into the entry's metrics. The weights
may also be a compact checkpoint folder (G_ema.safetensors + state.json) from a training run;
its steps and samples then go into the provenance.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slimswap.compress import release
from slimswap.paths import models_dir

# How the v2 generators in runs/ were trained (tools/gpu_session.sh `final`: the teacher and
# the lite network side by side, one GPU each, the same seconds; no distillation).
TRAINING = {
    "quality": {
        "trained_by": "tools/gpu_session.py teacher (slimswap.train.teacher, warp-guided v2)",
        "commands": [
            "bash tools/gpu_session.sh final 290 (python3 tools/gpu_session.py teacher 290)"
        ],
    },
    "lite": {
        "trained_by": "tools/gpu_session.py student: the lite network "
        "(SwapGeneratorConfig.student) trained directly with the teacher's objective, "
        "not distilled",
        "commands": [
            "bash tools/gpu_session.sh final 290 (python3 tools/gpu_session.py student 290)"
        ],
    },
}
COMMON = {
    "source": "tools/gpu_session.py, tools/gpu_session.sh",
    "data": "LFW + CelebA subset + LivePortrait clip frames: data/shards/train_128.npz + "
    "train_256.npz from `slimswap data build` (train split only)",
    "device": "lent NVIDIA GPU (tools/gpu_session.sh), bf16 autocast",
    "licence": release.LICENCE,
}


def load_weights(src: Path) -> tuple[Path, dict]:
    """(a save_generator file, extra provenance) from a file or a compact checkpoint folder."""
    if src.is_file():
        return src, {}
    from safetensors.torch import load_file

    from slimswap.swap.weights import build_generator, save_generator

    state = json.loads((src / "state.json").read_text())
    gen = state["generator"]
    model = build_generator(gen["arch"], json.dumps(gen["config"]))
    model.load_state_dict(
        {k: v.float() for k, v in load_file(str(src / "G_ema.safetensors")).items()}
    )
    out = Path(tempfile.mkdtemp()) / "G_ema_release.safetensors"
    save_generator(model, out)
    return out, {"steps": state["step"], "samples_seen": state["samples_seen"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("torch")
    t.add_argument("mode", choices=["quality", "lite"])
    t.add_argument("weights", type=Path)
    t.add_argument("--metrics", type=Path)
    e = sub.add_parser("exports")
    e.add_argument("model", type=Path)
    e.add_argument("name")
    e.add_argument("--metrics", type=Path)
    s = sub.add_parser("summary")
    s.add_argument("report", type=Path)
    u = sub.add_parser("unlist")
    u.add_argument("names", nargs="+")
    args = parser.parse_args()
    command = "python tools/release_model.py " + " ".join(sys.argv[1:])

    if args.cmd == "summary":
        rows = release.write_compression_summary(args.report)["rows"]
        print("compression_summary:", ", ".join(r["name"] for r in rows))
        return
    if args.cmd == "unlist":
        print("removed:", ", ".join(release.unlist(args.names)) or "none")
        return
    rows, context = release.report_rows(args.metrics)
    if args.cmd == "torch":
        from slimswap.swap.weights import read_metadata

        src, extra = load_weights(args.weights)
        name = f"{args.mode}_{read_metadata(src)['config']['resolution']}"
        provenance = {**TRAINING[args.mode], **COMMON, **extra, "released_by": command}
        row = rows.get(f"{name}.safetensors")
        entry = release.release_weights_file(
            src, name, args.mode, provenance, release.report_metrics(row, context)
        )
        print(json.dumps({k: v for k, v in entry.items() if k != "provenance"}, indent=1))
    else:
        report = json.loads((models_dir() / f"{args.name}_export.json").read_text())
        metrics = release.export_metrics(args.metrics, args.name)
        command = f"slimswap compress export --model {args.model} --name {args.name} --out models"
        for entry in release.release_exports(args.model, args.name, report, command, metrics):
            print(entry["name"], entry["sha256"][:12], entry["bytes"])


if __name__ == "__main__":
    main()
