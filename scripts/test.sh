#!/usr/bin/env bash
# Set up (venv + pinned deps, CPU torch from this machine's local wheel, Debian Chromium for the
# browser test), lint (ruff check) and run the test suite. Tests needing ../shared/data skip with
# a reason without it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e ".[test]"
bash scripts/install_browser.sh
.venv/bin/ruff check slimswap tests tools benchmarks
.venv/bin/python -m pytest -q "$@"
