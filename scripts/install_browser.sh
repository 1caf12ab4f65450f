#!/usr/bin/env bash
# What tests/ui/test_ui_browser.py needs beyond `pip install -e ".[test]"`: Debian's Chromium
# (Playwright drives it at /usr/bin/chromium; `playwright install` is never used, it downloads
# its own browser) and the playwright Python package in .venv. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check "playwright>=1.50,<2"
/usr/bin/chromium --version 2>/dev/null | head -1
.venv/bin/python -c "import playwright; from importlib.metadata import version; print('playwright', version('playwright'))"
