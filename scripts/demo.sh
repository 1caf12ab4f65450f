#!/usr/bin/env bash
# Set up and run the main job on the bundled sample media; prints where the result is.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e .
mkdir -p out
.venv/bin/slimswap swap -s examples/grace_hopper.jpg -t examples/clip.mp4 -o out/demo.mp4 --overwrite "$@"
