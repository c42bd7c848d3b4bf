#!/usr/bin/env bash
# Create .venv with a Python >= 3.12 found on this machine and install pairpilot with its dev
# extras, at the exact versions and hashes of requirements-dev.lock (scripts/lock.sh writes it
# from pyproject.toml's ranges), so every machine and CI run tests the same code.
# Idempotent: reinstalls only when pyproject.toml or the lock changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
stamp="$venv/.installed"

usable() {  # usable PYTHON: true when it runs and is 3.12 or 3.13 (numba, under pandas-ta, stops at 3.13)
  "$1" -c 'import sys; sys.exit(0 if (3, 12) <= sys.version_info[:2] <= (3, 13) else 1)' \
    >/dev/null 2>&1
}

find_python() {
  local candidate
  for candidate in "${PAIRPILOT_PYTHON:-}" python3.12 python3.13 python3; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 && usable "$candidate"; then
      command -v "$candidate"
      return 0
    fi
  done
  # pyenv shims refuse versions that are not selected, so look at pyenv's installs directly.
  local root
  root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
  for candidate in "$root"/versions/3.12*/bin/python3 "$root"/versions/3.13*/bin/python3; do
    if [ -x "$candidate" ] && usable "$candidate"; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

lock=requirements-dev.lock
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt "$lock" ] \
  && "$venv/bin/python" -c '' 2>/dev/null; then
  exit 0
fi

if ! python=$(find_python); then
  echo "pairpilot setup: no Python 3.12 or 3.13 found (tried \$PAIRPILOT_PYTHON, python3.12," \
    "python3.13, python3 and pyenv); install one or set PAIRPILOT_PYTHON" >&2
  exit 1
fi

echo "pairpilot setup: using $python ($("$python" --version 2>&1))"
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --require-hashes --only-binary :all: -r "$lock"
# The locked setuptools builds the editable install; its dependencies are all in the lock.
"$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
# A dependency added to pyproject.toml but not locked (scripts/lock.sh) fails here, not later.
"$venv/bin/python" -m pip check
# The backtest kernel compiled into numba's cache now, not by the first backtest.
scripts/warm-numba.sh
touch "$stamp"
echo "pairpilot setup: installed into $venv"
