#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment in .venv and installs CPM Studio into it, then runs the
# given command from it: `bash scripts/venv.sh cpm-studio`, `bash scripts/venv.sh cpm infer IMAGE`.
#
# Why a venv: Debian and Ubuntu refuse `pip install` into the system Python (PEP 668) and have no `python`
# command, only `python3`; a venv works the same on them, in CI and on a developer's pyenv Python.
# Run as root on Debian/Ubuntu, it installs python3-venv with apt when `python3 -m venv` cannot work.
# The first run downloads (~840 MB, TensorFlow 550 MB of it) and installs (2.9 GB); later runs only check a stamp.
# Pip's download cache (~/.cache/pip) is kept, so a new clone or a recreated .venv installs without downloading.
#
# Environment: PYTHON (the interpreter that makes the venv, default python3), CPM_EXTRAS (pip extras, e.g. "test").
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
EXTRAS="${CPM_EXTRAS:-}"
VENV=.venv

fail() { echo "scripts/venv.sh: $*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null 2>&1 || fail "no $PYTHON on PATH: install Python 3.11 or newer (Debian/Ubuntu: apt-get install python3 python3-venv)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || fail "$("$PYTHON" --version 2>&1) is too old: CPM Studio needs Python 3.11 or newer (set PYTHON=python3.11)"

# `python3 -m venv` needs ensurepip, which Debian ships apart in python3-venv.
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "scripts/venv.sh: installing python3-venv with apt" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  else
    fail "$PYTHON cannot make a virtual environment: install python3-venv (sudo apt-get install python3-venv)"
  fi
fi

# A .venv left half-made (e.g. by a run before python3-venv was there) has no working pip: make it anew.
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
  rm -rf "$VENV"
  echo "scripts/venv.sh: creating $VENV with $("$PYTHON" --version 2>&1)" >&2
  "$PYTHON" -m venv "$VENV"
fi

# Install again only when what is asked changed (pyproject.toml, the venv's interpreter, a new extra): one stamp
# for the project and one for each extra installed with it.
target="."
[ -n "$EXTRAS" ] && target=".[$EXTRAS]"
want="$( (cat pyproject.toml; "$VENV/bin/python" --version) | cksum)"
stamps=("$VENV/.cpm-installed")
[ -n "$EXTRAS" ] && stamps+=("$VENV/.cpm-installed-${EXTRAS//[^a-z0-9]/_}")
current=1
for stamp in "${stamps[@]}"; do
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] || current=0
done
if [ "$current" = 0 ]; then
  echo "scripts/venv.sh: installing CPM Studio${EXTRAS:+ with [$EXTRAS]} into $VENV" \
    "(into a new .venv: ~840 MB to download, 2.9 GB installed, a few minutes)" >&2
  "$VENV/bin/python" -m pip install -q -e "$target"
  for stamp in "${stamps[@]}"; do echo "$want" >"$stamp"; done
fi

if [ "$#" -gt 0 ]; then
  cmd="$1"
  shift
  [ -x "$VENV/bin/$cmd" ] && cmd="$VENV/bin/$cmd"  # cpm, cpm-studio, python, pytest... from the venv
  export PATH="$PWD/$VENV/bin:$PATH" VIRTUAL_ENV="$PWD/$VENV"
  exec "$cmd" "$@"
fi
