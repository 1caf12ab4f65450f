#!/usr/bin/env bash
# Set up (venv + pinned deps, CPU torch from this machine's local wheel) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e ".[test]"
.venv/bin/python -m pytest -q "$@"
