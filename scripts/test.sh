#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine (Xvfb and the X libraries Qt's xcb plugin loads,
# for the tests that open a real window), makes or reuses .venv with the project and its test extras
# (scripts/venv.sh: python3 only, no `python` command and no system-wide pip needed), then checks the import
# contracts (`lint-imports`) and runs the tests from it.
# Arguments go to pytest: `bash scripts/test.sh tests/test_core.py -k skeleton`.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  if ! command -v xvfb-run >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-image0 \
      libxcb-render-util0 libxcb-xinerama0 libxcb-cursor0 libxkbcommon-x11-0 libegl1 libgl1 libxcb-shape0 \
      libxcb-randr0 libxcb-xfixes0 libxcb-sync1 libxcb-xkb1 libfontconfig1 libdbus-1-3 >/dev/null
  fi
fi
export QT_QPA_PLATFORM=offscreen
# The layering rules first (pyproject.toml [tool.importlinter]: no Qt in cpm_core/training, cpm_core never imports
# training, no import cycles in cpm_core): a broken contract fails the run before any test.
CPM_EXTRAS=test bash scripts/venv.sh lint-imports --no-cache
CPM_EXTRAS=test bash scripts/venv.sh python -m pytest -q -p no:cacheprovider "$@"
