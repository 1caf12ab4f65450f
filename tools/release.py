"""Release models into models/ and models/MANIFEST: one tool for every kind of model file.

    python tools/release.py weights MODE WEIGHTS [--provenance P.json] [--metrics REPORT]
                                  [--eval EVAL_JSON --eval-model NAME] [--auto]
        -> models/<stem>_<resolution>.safetensors (a byte copy; WEIGHTS may also be a compact
           checkpoint folder), entry teacher_256 for quality, lite_256 for lite
    python tools/release.py exports MODEL NAME [--metrics REPORT]
        -> entries NAME_fp32/_fp16/_int8 for the files `slimswap compress export --name NAME
           --out models` wrote, with its saved validation (models/NAME_export.json)
    python tools/release.py fp16-storage MODEL FP32_ONNX [--name NAME] [--faces SHARD ...]
        -> models/NAME_fp32.onnx: the fp32 export with fp16-stored weights, checked against
           the torch model MODEL (what `quality` runs on a CPU)
    python tools/release.py auto NAME [--off]        # may `--mode auto` pick it?
    python tools/release.py summary REPORT           # MANIFEST's compression_summary
    python tools/release.py unlist NAME ... [--delete-files]

Every entry field comes from the file itself (hash, size, precision, resolution, params,
MACs), from this code (template, normalisation), from the entry of the model an export was
made from, or from what is passed here: the provenance (how, on what and where it was
trained) as a JSON object, REPORT (`slimswap compress report`'s compression.json) and
EVAL_JSON (`slimswap eval swapper`'s eval.json) as metrics. The library is
slimswap.compress.release; `slimswap compress export --release` lists exports the same way.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slimswap.compress import release
from slimswap.errors import UserError
from slimswap.paths import models_dir

VAL_FACES = ["data/shards/val_128.npz", "data/shards/val_256.npz"]


def release_weights(args, command: str) -> None:
    from slimswap.swap.weights import read_metadata

    src, extra = release.checkpoint_weights(args.weights)
    name = release.release_name(args.mode, int(read_metadata(src)["config"]["resolution"]))
    given = json.loads(args.provenance.read_text()) if args.provenance else {}
    provenance = {"licence": release.LICENCE, **given, **extra, "released_by": command}
    rows, context = release.report_rows(args.metrics)
    metrics = release.report_metrics(rows.get(f"{name}.safetensors"), context)
    if args.eval:
        metrics.update(release.eval_metrics(args.eval, args.eval_model or name))
    entry = release.release_weights_file(src, name, args.mode, provenance, metrics)
    if args.auto:
        release.set_auto(name)
    print(json.dumps({k: v for k, v in entry.items() if k != "provenance"}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("weights", help="torch weights of a mode")
    w.add_argument("mode", choices=sorted(release.STEMS))
    w.add_argument("weights", type=Path)
    w.add_argument("--provenance", type=Path, help="JSON object: how it was trained")
    w.add_argument("--metrics", type=Path, help="compression.json of `compress report`")
    w.add_argument("--eval", type=Path, help="eval.json of `slimswap eval swapper`")
    w.add_argument("--eval-model", help="its name in EVAL (default: the released name)")
    w.add_argument("--auto", action="store_true", help="it met its release targets")
    e = sub.add_parser("exports", help="the three files of `compress export`")
    e.add_argument("model", type=Path)
    e.add_argument("name")
    e.add_argument("--metrics", type=Path)
    f = sub.add_parser("fp16-storage", help="an fp32 export stored with fp16 weights")
    f.add_argument("model", type=Path)
    f.add_argument("fp32_onnx", type=Path)
    f.add_argument("--name", help="file stem (default: MODEL's)")
    f.add_argument("--faces", nargs="+", default=VAL_FACES, help="shards for the check")
    a = sub.add_parser("auto", help="set or clear the auto flag")
    a.add_argument("name")
    a.add_argument("--off", action="store_true")
    s = sub.add_parser("summary", help="MANIFEST's compression_summary")
    s.add_argument("report", type=Path)
    u = sub.add_parser("unlist", help="drop entries")
    u.add_argument("names", nargs="+")
    u.add_argument("--delete-files", action="store_true")
    args = parser.parse_args()
    command = "python tools/release.py " + " ".join(sys.argv[1:])

    if args.cmd == "weights":
        release_weights(args, command)
    elif args.cmd == "exports":
        report = json.loads((models_dir() / f"{args.name}_export.json").read_text())
        metrics = release.export_metrics(args.metrics, args.name)
        exported = f"slimswap compress export --model {args.model} --name {args.name} --out models"
        for entry in release.release_exports(args.model, args.name, report, exported, metrics):
            print(entry["name"], entry["sha256"][:12], entry["bytes"])
    elif args.cmd == "fp16-storage":
        from slimswap.compress.data import face_inputs

        faces = face_inputs(args.faces, 16, release.listed_entry(args.model).resolution)
        name = args.name or args.model.stem
        entry, check = release.release_fp16_storage(
            args.model, args.fp32_onnx, name, faces, command
        )
        print(entry["name"], entry["sha256"][:12], check)
    elif args.cmd == "auto":
        release.set_auto(args.name, not args.off)
        print(f"{args.name}: auto {'off' if args.off else 'on'}")
    elif args.cmd == "summary":
        rows = release.write_compression_summary(args.report)["rows"]
        print("compression_summary:", ", ".join(r["name"] for r in rows))
    else:
        removed = release.unlist(args.names, delete_files=args.delete_files)
        print("removed:", ", ".join(removed) or "none")


if __name__ == "__main__":
    try:
        main()
    except UserError as err:  # one line, exit 2, as the slimswap command does
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
