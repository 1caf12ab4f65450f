"""Rank A/B variants by their crop scores (tools/gpu_session.sh ab): best first, one per line.

The order is by top-1 retrieval as the source minus as the target (a swap must be read as the
source and not as the target), ties broken by same-person PSNR. Prints the table to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(runs: str, names: list[str]) -> None:
    rows = []
    for name in names:
        path = Path(runs) / f"ablate_{name}" / "scores.json"
        if not path.is_file():
            print(f"{name}: no scores", file=sys.stderr)
            continue
        scores = json.loads(path.read_text())
        gen = scores.get(f"{name}:generator", {})
        rows.append((gen, name))
        print(name, json.dumps(gen), file=sys.stderr)
    if not rows:
        raise SystemExit("no variant has scores")

    def key(row: tuple) -> tuple:
        gen, _ = row
        margin = gen.get("top1_source", 0.0) - gen.get("top1_target", 1.0)
        return (margin, gen.get("reconstruction_psnr", 0.0))

    for _, name in sorted(rows, key=key, reverse=True):
        print(name)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
